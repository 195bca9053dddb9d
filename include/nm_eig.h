/* nm_eig: the eigenvalues of a distributed symmetric Gram matrix, one table
 * row per eigen-solver (IOR's ior_aiori_t pattern).
 *
 * A row is the solver's name, whether it can run on a layout, its memory
 * beyond K (the one estimate validate and the memory guard use, for every
 * experiment), and its run function.  `eigensolver: auto` (the default)
 * picks the row the cost model predicts fastest for m and P (nm_eig_choose);
 * an explicit name runs that row, or ScaLAPACK where the row cannot run on
 * the layout (ELPA at small m).
 *
 * The cost model: seconds of each row measured at a few m for a rank count
 * P (all eigenvalues of a Gram matrix, the time nm_eig_solve takes),
 * interpolated log-log in m; beyond the largest m measured it grows like
 * m^3, below the smallest like m; a P without rows takes the nearest P
 * measured below it (the distributed rows scaled by P_measured / P, the
 * gathered one not).  Its table is built in (measured on the development
 * machine, docs/benchmarks.md) and replaced row by row by a file written by
 * `make bench`: $NTKMEM_EIG_MODEL if set, else eig-model.txt beside the
 * executable (build/eig-model.txt for build/ntkmem).  A file is lines
 * `P solver m seconds` ('#' starts a comment).
 *
 * Adding an eigen-solver: a row in nm_eig_solvers (src/num/eig.c) with its
 * functions, its name in nm_eigsolver_names and a NM_EIGSOLVER_ value; its
 * built-in cost rows; `make bench` measures it with the others. */
#ifndef NM_EIG_H
#define NM_EIG_H
#include <stddef.h>
#include "nm_grid.h"

/* The `eigensolver` setting's values: the table's rows in order, then auto. */
enum {
    NM_EIGSOLVER_ELPA = 0,  /* ELPA two-stage */
    NM_EIGSOLVER_SCALAPACK, /* pdsytrd + dsterf / dstebz */
    NM_EIGSOLVER_ELPA1,     /* ELPA one-stage */
    NM_EIGSOLVER_LAPACK,    /* gathered to rank 0: dsytrd + dsterf / dstebz, threaded */
    NM_EIGSOLVER_LAPACK2,   /* gathered to rank 0: two-stage reduction + dsterf / dstebz */
    NM_EIGSOLVER_AUTO,
    NM_EIGSOLVER_NROWS = NM_EIGSOLVER_AUTO
};
extern const char *const nm_eigsolver_names[]; /* NULL-terminated */

/* The layout an eigen-solver runs on: m x m in nb x nb blocks on an
 * nprow x npcol grid of P ranks. */
typedef struct {
    long m;
    int nprow, npcol, nb, P;
} nm_eig_layout;

typedef struct {
    const char *name;
    const char *about;  /* one line: what it runs */
    int distributed;    /* its work is spread over the ranks (cost model) */
    /* 1 when it can run on the layout; else 0 and why (if not NULL) */
    int (*usable)(const nm_eig_layout *L, char *why, size_t n);
    /* bytes on `rank` beyond K itself */
    double (*mem_bytes)(const nm_eig_layout *L, int rank);
    /* the spectrum of K (lower triangle; K is destroyed): all m eigenvalues
     * ascending into w when all, else only ext[0] = lambda_min and
     * ext[1] = lambda_max; results on every rank of g->comm.  Collective. */
    int (*run)(nm_dmat *K, const nm_grid *g, int all, double *w, double ext[2], nm_err *e);
} nm_eig_solver;

extern const nm_eig_solver nm_eig_solvers[NM_EIGSOLVER_NROWS];

/* The row that runs when `requested` is asked on L (auto: the cheapest the
 * cost model predicts among the usable rows; a named row: itself, or
 * ScaLAPACK where it cannot run).  why gets the reason when the row differs
 * from the request, and auto's prediction; "" otherwise. */
int nm_eig_choose(int requested, const nm_eig_layout *L, char *why, size_t n);

/* Bytes on `rank` beyond K of what nm_eig_choose(requested, L) runs. */
double nm_eig_mem_bytes(int requested, const nm_eig_layout *L, int rank);

/* The cost model's seconds for row `solver` at m on P ranks (> 0). */
double nm_eig_predict(int solver, long m, int P);

/* Where the cost model's rows come from: "built-in" or the file's path
 * (with the error of a file that could not be read, once). */
const char *nm_eig_model_source(void);

/* Replace the cost model's rows by those of `path` (rows of other (P, solver)
 * pairs stay); NULL: the built-in table again.  Error: file, line. */
int nm_eig_model_load(const char *path, nm_err *e);

/* The spectrum of K (lower triangle, destroyed) by nm_eig_choose(requested,
 * ...) -- the same row on every rank (rank 0's choice).  all: every
 * eigenvalue ascending into w[m]; else only the extremes.  lmin, lmax (and
 * w) end up on every rank.  Collective over g->comm. */
int nm_eig_solve(nm_dmat *K, const nm_grid *g, int requested, int all, double *w, double *lmin,
                 double *lmax, nm_err *e);

#endif
