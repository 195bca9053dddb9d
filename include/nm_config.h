/* nm_config: read a sweep file (libyaml) into a sweep specification.
 * Every error names file:line:column and the key, and lists what is allowed. */
#ifndef NM_CONFIG_H
#define NM_CONFIG_H

#include "nm_err.h"
#include "nm_params.h"

#define NM_MAX_AXES 32
#define NM_MAX_AXIS_VALUES 4096

/* One swept setting: its values in text form, in sweep order. */
typedef struct {
    const nm_setting *s;
    int line, col;
    int n;
    char (*vals)[64];
} nm_axis;

typedef struct {
    char file[NM_PATH_MAX];
    char output[NM_PATH_MAX];
    int experiment;
    unsigned long long seed;
    long repeats;
    nm_params fixed; /* defaults + `fixed:` */
    int naxes;
    nm_axis axes[NM_MAX_AXES];
} nm_sweep_spec;

int nm_config_load(const char *path, nm_sweep_spec *spec, nm_err *e);
void nm_config_free(nm_sweep_spec *spec);

#endif
