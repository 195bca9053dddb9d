#include "nm_exp.h"

const nm_experiment *nm_experiment_get(int id)
{
    switch (id) {
    case NM_EXP_SGD: return &nm_exp_sgd;
    case NM_EXP_CONSTRUCT: return &nm_exp_construct;
    case NM_EXP_NEAR_MIN: return &nm_exp_near_min;
    default: return NULL;
    }
}

int nm_exp_check_saves(const nm_params *p, nm_err *e)
{
    double xb = (double)p->m * (double)p->d * 8.0;
    double wb = (double)nm_params_rows(p) * (double)p->d * 8.0;
    char a[32], b[32];
    nm_bytes_str(p->save_max_bytes, b, sizeof b);
    if (p->save_data[0] && xb > p->save_max_bytes)
        return nm_fail(e, NM_EINVAL, "save_data would write X of %ld x %ld = %s, above "
                       "save_max_bytes = %s", p->m, p->d, nm_bytes_str(xb, a, sizeof a), b);
    if (p->save_weights[0] && wb > p->save_max_bytes)
        return nm_fail(e, NM_EINVAL, "save_weights would write W of %ld x %ld = %s, above "
                       "save_max_bytes = %s", nm_params_rows(p), p->d,
                       nm_bytes_str(wb, a, sizeof a), b);
    return NM_OK;
}
