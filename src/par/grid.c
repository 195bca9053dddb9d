#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_grid.h"
#include "nm_scalapack.h"

void nm_grid_auto(int P, int *nprow, int *npcol)
{
    int r = (int)floor(sqrt((double)P));
    while (r > 1 && P % r != 0) r--; /* exact factorisation: no idle rank */
    *nprow = r;
    *npcol = P / r;
}

static int make_ctxt(int handle, int nprow, int npcol)
{
    int c = handle;
    Cblacs_gridinit(&c, "Row", nprow, npcol);
    return c;
}

int nm_grid_init(nm_grid *g, MPI_Comm comm, int nprow, int npcol, nm_err *e)
{
    memset(g, 0, sizeof *g);
    g->comm = comm;
    MPI_Comm_rank(comm, &g->rank);
    MPI_Comm_size(comm, &g->size);
    if (nprow <= 0 || npcol <= 0) nm_grid_auto(g->size, &nprow, &npcol);
    if ((long)nprow * npcol > g->size)
        return nm_fail(e, NM_EINVAL, "grid %d x %d needs %d ranks but only %d are running", nprow,
                       npcol, nprow * npcol, g->size);
    g->sys_handle = Csys2blacs_handle(comm);
    g->ctxt = make_ctxt(g->sys_handle, nprow, npcol);
    g->ctxt_all = make_ctxt(g->sys_handle, 1, g->size);
    g->ctxt_root = make_ctxt(g->sys_handle, 1, 1);
    g->nprow = nprow;
    g->npcol = npcol;
    g->myrow = g->mycol = -1;
    g->in_grid = g->rank < nprow * npcol;
    if (g->in_grid) {
        int pr, pc;
        Cblacs_gridinfo(g->ctxt, &pr, &pc, &g->myrow, &g->mycol);
    }
    return NM_OK;
}

void nm_grid_free(nm_grid *g)
{
    /* gridexit only on members: BLACS marks non-members' contexts as -1 */
    int ctx[3] = {g->ctxt, g->ctxt_all, g->ctxt_root};
    for (int i = 0; i < 3; i++) {
        int pr = -1, pc, r, c;
        if (ctx[i] < 0) continue;
        Cblacs_gridinfo(ctx[i], &pr, &pc, &r, &c);
        if (pr > 0 && r >= 0) Cblacs_gridexit(ctx[i]);
    }
    Cfree_blacs_system_handle(g->sys_handle);
    memset(g, 0, sizeof *g);
}

int nm_grid_dmat_init(nm_dmat *A, const nm_grid *g, int ctxt, int m, int n, int mb, int nb,
                 nm_err *e)
{
    memset(A, 0, sizeof *A);
    A->m = m;
    A->n = n;
    A->mb = mb;
    A->nb = nb;
    A->desc[1] = -1;
    int pr = -1, pc = -1, r = -1, c = -1;
    if (ctxt >= 0) Cblacs_gridinfo(ctxt, &pr, &pc, &r, &c);
    if (pr <= 0 || r < 0) return NM_OK; /* not in this context */
    int zero = 0, info;
    A->mloc = numroc_(&m, &mb, &r, &zero, &pr);
    A->nloc = numroc_(&n, &nb, &c, &zero, &pc);
    A->lld = A->mloc > 1 ? A->mloc : 1;
    descinit_(A->desc, &m, &n, &mb, &nb, &zero, &zero, &ctxt, &A->lld, &info);
    if (info != 0)
        return nm_fail(e, NM_EINVAL, "descinit failed (info=%d) for %d x %d, blocks %d x %d",
                       info, m, n, mb, nb);
    size_t cnt = (size_t)A->lld * (size_t)(A->nloc > 0 ? A->nloc : 1);
    A->a = nm_calloc(cnt, sizeof(double), "distributed matrix", e);
    return A->a ? NM_OK : NM_ENOMEM;
}

void nm_grid_dmat_free(nm_dmat *A)
{
    free(A->a);
    A->a = NULL;
}

static int l2g(int il, int nb, int iproc, int nprocs)
{
    return ((il / nb) * nprocs + iproc) * nb + il % nb;
}

int nm_grid_dmat_grow(const nm_dmat *A, int il)
{
    int pr, pc, r, c;
    Cblacs_gridinfo(A->desc[1], &pr, &pc, &r, &c);
    return l2g(il, A->mb, r, pr);
}

int nm_grid_dmat_gcol(const nm_dmat *A, int jl)
{
    int pr, pc, r, c;
    Cblacs_gridinfo(A->desc[1], &pr, &pc, &r, &c);
    return l2g(jl, A->nb, c, pc);
}

void nm_grid_dmat_copy(const nm_dmat *A, nm_dmat *B, const nm_grid *g)
{
    double dummy = 0;
    Cpdgemr2d(A->m, A->n, A->a ? A->a : &dummy, 1, 1, (int *)A->desc, B->a ? B->a : &dummy, 1, 1,
              B->desc, g->ctxt_all);
}

/* The runs of A's piece on grid place (r, c) of a pr x pc grid, in one
 * order both ends share: at (loc[k], glob[k]) -- local offset with leading
 * dimension lld, global offset in the column-major m x n array, both in
 * doubles -- len[k] doubles.  lower: only rows >= the column.  Runs that
 * continue one another on both sides are merged (every run of a column
 * when pr = 1).  Returns the count; with NULL arrays it only counts. */
static size_t runs(const nm_dmat *A, int pr, int pc, int r, int c, int lld, int lower,
                   MPI_Aint *loc, MPI_Aint *glob, int *len)
{
    int zero = 0;
    int mloc = numroc_(&A->m, &A->mb, &r, &zero, &pr), nloc = numroc_(&A->n, &A->nb, &c, &zero, &pc);
    size_t k = 0;
    MPI_Aint lend = -1, gend = -1, cur = 0; /* where the last run ends, its length */
    for (int jl = 0; jl < nloc; jl++) {
        MPI_Aint gj = l2g(jl, A->nb, c, pc);
        for (int il = 0; il < mloc; il += A->mb) {
            MPI_Aint gi = l2g(il, A->mb, r, pr), l = mloc - il < A->mb ? mloc - il : A->mb, skip = 0;
            if (lower && gi + l <= gj) continue;
            if (lower && gi < gj) skip = gj - gi;
            MPI_Aint lo = il + skip + (MPI_Aint)jl * lld, go = gi + skip + gj * (MPI_Aint)A->m;
            l -= skip;
            if (k > 0 && lo == lend && go == gend && cur + l <= INT_MAX) { /* int counts */
                cur += l;
                if (len) len[k - 1] = (int)cur;
            } else {
                cur = l;
                if (loc) loc[k] = lo * (MPI_Aint)sizeof(double), glob[k] = go * (MPI_Aint)sizeof(double),
                         len[k] = (int)l;
                k++;
            }
            lend = lo + l, gend = go + l;
        }
    }
    return k;
}

/* An MPI type for those runs, local (side 0) or global (side 1) offsets. */
static int runs_type(const nm_dmat *A, int pr, int pc, int r, int c, int lld, int lower, int side,
                     MPI_Datatype *t, nm_err *e)
{
    size_t k = runs(A, pr, pc, r, c, lld, lower, NULL, NULL, NULL);
    MPI_Aint *lo = malloc(sizeof(MPI_Aint) * (k + 1)), *go = malloc(sizeof(MPI_Aint) * (k + 1));
    int *len = malloc(sizeof(int) * (k + 1)), rc = NM_OK;
    if (!lo || !go || !len || k > INT_MAX)
        rc = nm_fail(e, NM_ENOMEM, "gather: no room for the layout of %zu pieces", k);
    if (rc == NM_OK) {
        k = runs(A, pr, pc, r, c, lld, lower, lo, go, len);
        /* local calls (no data moves): not through NM_MPI */
        if (MPI_Type_create_hindexed((int)k, len, side ? go : lo, MPI_DOUBLE, t) != MPI_SUCCESS)
            rc = nm_fail(e, NM_EMPI, "gather: MPI_Type_create_hindexed failed");
        else if (MPI_Type_commit(t) != MPI_SUCCESS) {
            MPI_Type_free(t);
            rc = nm_fail(e, NM_EMPI, "gather: MPI_Type_commit failed");
        }
    }
    free(lo), free(go), free(len);
    return rc;
}

/* One MPI_Alltoallw, straight into place: each rank sends its piece as an
 * MPI type of its block runs, and rank 0 receives each piece as a type of
 * the same runs at their global offsets (no staging copy; pdgemr2d moved
 * 128 MiB, m = 4000, at 0.15 GB/s here).  A collective, not sends and
 * receives: every rank makes the same sequence of MPI calls, so a failure
 * anywhere is agreed on without a rank left waiting. */
int nm_grid_dmat_gather(const nm_dmat *A, const nm_grid *g, int lower, double *full, nm_err *e)
{
    int pr = -1, pc = -1, r = -1, c = -1, rc = NM_OK, P = g->size;
    Cblacs_gridinfo(A->desc[1], &pr, &pc, &r, &c);
    int where[2] = {A->a ? r : -1, A->a ? c : -1}, *all = malloc(2 * sizeof(int) * (size_t)P);
    int *cnt = calloc(4 * (size_t)P, sizeof(int)); /* send/recv counts, zero displacements */
    MPI_Datatype *ty = malloc(2 * sizeof(MPI_Datatype) * (size_t)P);
    if (!all || !cnt || !ty || (g->rank == 0 && !full))
        rc = nm_fail(e, NM_ENOMEM, "gather: no room for %d x %d on rank %d", A->m, A->n, g->rank);
    if ((rc = nm_comm_agree(g->comm, rc, e)) == NM_OK)
        rc = nm_comm_agree(g->comm, NM_MPI(MPI_Allgather(where, 2, MPI_INT, all, 2, MPI_INT, g->comm), e), e);
    if (rc == NM_OK) {
        int *scnt = cnt, *sdsp = cnt + P, *rcnt = cnt + 2 * P, *rdsp = cnt + 3 * P;
        MPI_Datatype *sty = ty, *rty = ty + P;
        for (int s = 0; s < P; s++) sty[s] = rty[s] = MPI_DOUBLE;
        if (where[0] >= 0 && A->mloc > 0 && A->nloc > 0) {
            rc = runs_type(A, pr, pc, r, c, A->lld, lower, 0, &sty[0], e);
            scnt[0] = rc == NM_OK;
        }
        for (int s = 0; g->rank == 0 && rc == NM_OK && s < P; s++) {
            if (all[2 * s] < 0) continue;
            rc = runs_type(A, pr, pc, all[2 * s], all[2 * s + 1], 0, lower, 1, &rty[s], e);
            rcnt[s] = rc == NM_OK;
        }
        if ((rc = nm_comm_agree(g->comm, rc, e)) == NM_OK)
            rc = NM_MPI(MPI_Alltoallw(A->a, scnt, sdsp, sty, full, rcnt, rdsp, rty, g->comm), e);
        if (scnt[0]) MPI_Type_free(&sty[0]);
        for (int s = 0; s < P; s++)
            if (rcnt[s]) MPI_Type_free(&rty[s]);
        rc = nm_comm_agree(g->comm, rc, e);
    }
    free(all), free(cnt), free(ty);
    return rc;
}
