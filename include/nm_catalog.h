/* nm_catalog: the catalog of the experiments as the settings, the sweep files and the
 * CSVs see them -- each one's name, the settings it reads, its own defaults
 * and how its rows are spaced -- in one table below both io/ and exp/.  The
 * experiments' code (src/exp/exp.c: metrics, hooks) finds its row by name;
 * nothing here depends on the experiments' code. */
#ifndef NM_CATALOG_H
#define NM_CATALOG_H
#include <stddef.h>

typedef struct { const char *key, *value; } nm_default; /* {NULL, NULL} ends a list */

/* Which rows a run writes (what --resume expects of a finished run). */
typedef enum {
    NM_ROWS_ONE,   /* one final row */
    NM_ROWS_EVAL,  /* step 0, every eval_every steps, the last step */
    NM_ROWS_EPOCH, /* with epochs > 0 one row per epoch, or per whole epochs when eval_every
                      is longer; else as NM_ROWS_EVAL (near_min) */
} nm_catalog_rows;

/* Whether a run trains on a Pe x Pn grid of example blocks x neuron blocks
 * (setting train_grid) that the coordinator plans and prints. */
typedef enum {
    NM_TGRID_NONE,  /* it does not train */
    NM_TGRID_AUTO,  /* the grid given, else the one nm_train_grid_choose picks */
    NM_TGRID_GIVEN, /* only a grid given; its own default is 1 x P (near_min) */
} nm_catalog_tgrid;

typedef struct {
    const char *name; /* `experiment:` in a sweep, the CSV column; hashed into the keys */
    /* the settings it reads besides the common ones (nm_setting.common): keys separated by
     * spaces; every other setting in its sweep file is refused */
    const char *settings;
    const nm_default *defaults; /* its own defaults, overriding the settings table's */
    nm_catalog_rows rows;
    nm_catalog_tgrid train_grid;
} nm_catalog_entry;

/* The table's rows; an experiment's id (nm_params.experiment) is its index. */
int nm_catalog_count(void);
const nm_catalog_entry *nm_catalog_get(int id);
const char *nm_catalog_name(int id);
const nm_default *nm_catalog_defaults(int id); /* NULL: none */

/* Id of the experiment called name, -1 if none; "sgd, ntk_spectrum, ...". */
int nm_catalog_lookup(const char *name);
void nm_catalog_list(char *buf, size_t n);

/* Does experiment id name key in its settings? */
int nm_catalog_reads(int id, const char *key);

#endif
