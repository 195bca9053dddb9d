#include "nm_exp.h"

const nm_experiment *nm_experiment_get(int id)
{
    switch (id) {
    case NM_EXP_SGD: return &nm_exp_sgd;
    case NM_EXP_NTK_TRAIN: return &nm_exp_ntk_train;
    case NM_EXP_ONESTEP: return &nm_exp_onestep;
    case NM_EXP_CONSTRUCT: return &nm_exp_construct;
    case NM_EXP_NEAR_MIN: return &nm_exp_near_min;
    case NM_EXP_NTK_SPECTRUM: return &nm_exp_ntk_spectrum;
    case NM_EXP_GD_WIDTH: return &nm_exp_gd_width;
    default: return NULL;
    }
}
