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

int nm_grid_dmat_gather(const nm_dmat *A, const nm_grid *g, double *full, nm_err *e)
{
    nm_dmat R;
    int rc = nm_grid_dmat_init(&R, g, g->ctxt_root, A->m, A->n, A->m > 0 ? A->m : 1,
                          A->n > 0 ? A->n : 1, e);
    int ok = rc == NM_OK, all = 0;
    if (NM_MPI(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, g->comm), e)) {
        nm_grid_dmat_free(&R);
        return NM_EMPI;
    }
    if (!all) {
        nm_grid_dmat_free(&R);
        return rc ? rc : nm_fail(e, NM_ENOMEM, "gather: rank 0 could not allocate");
    }
    nm_grid_dmat_copy(A, &R, g);
    if (g->rank == 0 && full) memcpy(full, R.a, (size_t)A->m * (size_t)A->n * sizeof(double));
    nm_grid_dmat_free(&R);
    return NM_OK;
}
