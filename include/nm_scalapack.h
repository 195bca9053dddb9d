/* nm_scalapack: the ScaLAPACK/BLACS/PBLAS and LAPACK prototypes ntkmem uses
 * (the one header that declares them; Debian ships none). */
/* Hand-written prototypes: Debian's libscalapack-openmpi-dev ships NO C header.
 * Fortran routines: all args by pointer, trailing underscore, column-major.
 * gfortran appends one hidden `size_t` length argument per CHARACTER argument,
 * at the very end of the argument list.  We pass them (=1) to avoid the
 * known gfortran>=9 sibling-call stack-corruption problem (UB otherwise). */
#ifndef NM_SCALAPACK_H
#define NM_SCALAPACK_H
#include <stddef.h>
#include <mpi.h>

typedef size_t fstrlen;  /* gfortran hidden character length type */

/* ---- BLACS (C interface, exported by libscalapack-openmpi) ---- */
void Cblacs_pinfo(int *mypnum, int *nprocs);
void Cblacs_get(int icontxt, int what, int *val);
void Cblacs_gridinit(int *icontxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int icontxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int icontxt);
int  Csys2blacs_handle(MPI_Comm comm); /* BLACS system handle for an MPI communicator */
void Cfree_blacs_system_handle(int handle);

/* ---- ScaLAPACK TOOLS ---- */
int  numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
             const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
               int *info);
void Cpdgemr2d(int m, int n, double *a, int ia, int ja, int *desca, double *b,
               int ib, int jb, int *descb, int gcontext);

/* ---- PBLAS ---- */
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n,
             const int *k, const double *alpha, const double *a, const int *ia,
             const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c,
             const int *ic, const int *jc, const int *descc, fstrlen, fstrlen);

/* ---- ScaLAPACK drivers ---- */
void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, int *info, fstrlen);
void pdpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
              const int *ia, const int *ja, const int *desca, double *b,
              const int *ib, const int *jb, const int *descb, int *info, fstrlen);

/* tridiagonal reduction (nm_eig) */
void pdsytrd_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, double *d, double *e, double *tau, double *work,
              const int *lwork, int *info, fstrlen);

/* ---- serial LAPACK/BLAS (no lapacke installed; cblas.h exists but we use F77) ---- */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a,
             const int *lda, double *w, double *work, const int *lwork, int *iwork,
             const int *liwork, int *info, fstrlen, fstrlen);
void dsytrd_(const char *uplo, const int *n, double *a, const int *lda, double *d, double *e,
             double *tau, double *work, const int *lwork, int *info, fstrlen);
/* generalized symmetric-definite eigenproblem (LOBPCG's Rayleigh-Ritz, nm_lobpcg) */
void dsygv_(const int *itype, const char *jobz, const char *uplo, const int *n, double *a,
            const int *lda, double *b, const int *ldb, double *w, double *work, const int *lwork,
            int *info, fstrlen, fstrlen);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info,
             fstrlen);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
             const int *lda, double *b, const int *ldb, int *info, fstrlen);
void dsyrk_(const char *uplo, const char *trans, const int *n, const int *k,
            const double *alpha, const double *a, const int *lda, const double *beta,
            double *c, const int *ldc, fstrlen, fstrlen);
/* symmetric tridiagonal eigenproblem (Golub-Welsch Gauss-Hermite rule, nm_kernels) */
void dstev_(const char *jobz, const int *n, double *d, double *e, double *z, const int *ldz,
            double *work, int *info, fstrlen);

/* eigenvalues of a symmetric tridiagonal matrix: all (root-free QR) or by bisection */
/* LAPACK's two-stage reduction (3.7+): full to band by BLAS-3, band to
 * tridiagonal by bulge chasing (what dsyev_2stage runs). */
void dsytrd_sy2sb_(const char *uplo, const int *n, const int *kd, double *a, const int *lda,
                   double *ab, const int *ldab, double *tau, double *work, const int *lwork,
                   int *info, fstrlen luplo);
void dsytrd_sb2st_(const char *stage1, const char *vect, const char *uplo, const int *n,
                   const int *kd, double *ab, const int *ldab, double *d, double *e, double *hous,
                   const int *lhous, double *work, const int *lwork, int *info, fstrlen ls,
                   fstrlen lv, fstrlen lu);
/* selected eigenpairs of a symmetric matrix (MRRR): the thick-restart
 * Lanczos's Rayleigh-Ritz step (nm_ntkop_lambda_min) */
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
             const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
             const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info, fstrlen,
             fstrlen, fstrlen);
void dsterf_(const int *n, double *d, double *e, int *info);
void dstebz_(const char *range, const char *order, const int *n, const double *vl,
             const double *vu, const int *il, const int *iu, const double *abstol,
             const double *d, const double *e, int *m, int *nsplit, double *w, int *iblock,
             int *isplit, double *work, int *iwork, int *info, fstrlen, fstrlen);

/* ---- QR (orthogonal init, [D20a]) ---- */
void pdgeqrf_(const int *m, const int *n, double *a, const int *ia, const int *ja, const int *desca,
              double *tau, double *work, const int *lwork, int *info);
void pdorgqr_(const int *m, const int *n, const int *k, double *a, const int *ia, const int *ja,
              const int *desca, const double *tau, double *work, const int *lwork, int *info);
/* ---- serial LAPACK references ---- */
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
             const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda,
             const double *tau, double *work, const int *lwork, int *info);

#endif
