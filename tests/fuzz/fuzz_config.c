/* libFuzzer target (make fuzz): any byte string as a sweep file must give
 * either a plan or an error message -- never a crash, a hang, an overflow or
 * an expansion that does not end.  The parser reads a path, so each input is
 * written to one private temporary file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nm_config.h"
#include "nm_sweep.h"

static char path[64];

static void cleanup(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/nm-fuzz-%ld.yaml", (long)getpid());
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, n, f);
    fclose(f);
    static nm_sweep_spec spec;
    nm_err e = {0};
    if (nm_config_load(path, &spec, &e) == NM_OK) {
        nm_sweep sw = {0};
        if (nm_sweep_expand(&spec, &sw, &e) == NM_OK) nm_sweep_free(&sw);
    }
    nm_config_free(&spec);
    return 0;
}
