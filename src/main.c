/* ntkmem: memorization and NTK experiments on depth-two networks, with MPI.
 * A thin main over libntkmem: parse the command line, start MPI, hand over. */
#include <errno.h>
#include <mpi.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_coord.h"
#include "nm_csv.h"
#include "nm_merge.h"
#include "nm_search.h"
#include "nm_params.h"
#include "nm_version.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  mpirun -np P ntkmem run SWEEP.yaml [--out FILE.csv] [--resume | --force]\n"
            "                         [--dry-run] [--shard i/n] [--keep-foreign]\n"
            "                         [--allow-mixed-versions]\n"
            "  ntkmem validate SWEEP.yaml [--ranks P] [--ranks-per-node N]   print points, memory\n"
            "  ntkmem merge A.csv B.csv ... -o ALL.csv [--force] [--allow-mixed-versions]\n"
            "                                          join CSVs of one sweep\n"
            "  ntkmem --help | --help-settings | --help-columns | --version\n"
            "\n"
            "  --out FILE      write rows here instead of the sweep's `output:`\n"
            "  --resume        keep the rows of runs already finished in FILE and run the rest\n"
            "  --force         overwrite FILE if it exists\n"
            "  --keep-foreign  --resume: keep rows of runs not in this sweep (else refused)\n"
            "  --allow-mixed-versions  --resume: keep rows of another ntkmem version\n"
            "  --dry-run       validate and list what would run; write nothing\n"
            "  --shard i/n     run only points with index %% n == i (job arrays)\n"
            "  --ranks P       validate: estimate memory for P ranks\n"
            "  --ranks-per-node N  validate: N ranks share a node's memory (SLURM_MEM_PER_NODE,\n"
            "                  SLURM_MEM_PER_CPU x cpus, else 80%% of MemTotal)\n"
            "  merge           headers must agree; every step of every run (key) is kept\n"
            "                  once: byte-identical copies are duplicates, copies that\n"
            "                  differ in what they computed are a conflict (refused), as are\n"
            "                  shards of two sweeps; sorted by point, repeat, step; -o FILE\n"
            "                  is not overwritten without --force, nor while a sweep writes it;\n"
            "                  a search's shards (A.qstar.csv beside A.csv): one run per point,\n"
            "                  repeat and probe, summaries joined into ALL.qstar.csv\n"
            "\n"
            "SIGUSR1 or SIGTERM stop the sweep at the next evaluation with the CSV flushed\n"
            "(exit 0); rerun with --resume to continue.  Settings: ntkmem --help-settings\n"
            "\n"
            "exit status: 0 all runs ok (or stopped by a signal); 1 a run failed or a\n"
            "self-check FAILED; 2 the sweep was refused; 3 no failure, but some run ended\n"
            "not_converged (a solver stopped at max_products; its values are nan)\n");
}

static void help_settings(void)
{
    printf("| key | type | default | experiments | meaning |\n|---|---|---|---|---|\n");
    for (int i = 0; i < nm_nsettings; i++) {
        const nm_setting *s = &nm_settings[i];
        static const char *const tn[] = {"int", "real", "enum", "bool", "path", "bytes", "grid"};
        char ex[256] = "", vals[512] = "", def[256];
        if (s->common)
            snprintf(ex, sizeof ex, "all");
        else
            for (int x = 0, k = 0; x < nm_catalog_count(); x++)
                if (nm_params_setting_applies(s, x))
                    k += snprintf(ex + k, sizeof ex - (size_t)k, "%s%s", k ? ", " : "",
                                  nm_catalog_name(x));
        nm_params_setting_default_help(s, def, sizeof def);
        if (s->names && s->type == NM_T_ENUM) nm_params_enum_list(s->names, vals, sizeof vals);
        printf("| `%s` | %s | `%s` | %s | %s%s%s%s |\n", s->key, tn[s->type], def, ex, s->help,
               vals[0] ? " (one of: " : "", vals, vals[0] ? ")" : "");
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++)
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    putchar('"');
}

/* The CSV column table (nm_csv_columns[]) as JSON, for the Python side:
 * scripts/update-readme-settings.sh keeps analysis/columns.json equal to it. */
static void help_columns(void)
{
    static const char *const group[] = {"lead", "meta"};
    static const char *const type[] = {"hex", "int", "text", "version", "seconds"};
    printf("{\n  \"time_prefix\": ");
    json_str(nm_csv_time_prefix);
    printf(",\n  \"columns\": [\n");
    for (int i = 0; i < nm_csv_ncolumns; i++) {
        const nm_csv_column *c = &nm_csv_columns[i];
        printf("    {\"name\": ");
        json_str(c->name);
        printf(", \"group\": \"%s\", \"type\": \"%s\", \"how\": %s, \"values\": ",
               group[c->group], type[c->type], c->how ? "true" : "false");
        if (c->values) {
            printf("[");
            for (int k = 0; c->values[k]; k++) printf("%s", k ? ", " : ""), json_str(c->values[k]);
            printf("]");
        } else {
            printf("null");
        }
        printf(", \"help\": ");
        json_str(c->help);
        printf("}%s\n", i + 1 < nm_csv_ncolumns ? "," : "");
    }
    printf("  ]\n}\n");
}

static int parse_shard(const char *s, nm_run_opts *o)
{
    char *end;
    o->shard_i = strtol(s, &end, 10);
    if (end == s || *end != '/') return -1;
    s = end + 1;
    o->shard_n = strtol(s, &end, 10);
    return (end == s || *end || o->shard_n < 1 || o->shard_i < 0 || o->shard_i >= o->shard_n) ? -1 : 0;
}

/* --ranks, --ranks-per-node: a whole number of ranks, nothing else */
static int parse_count(const char *opt, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > NM_MAX_RANKS) {
        fprintf(stderr, "ntkmem: %s needs a number of ranks in [1, %d], got '%s'\n", opt,
                NM_MAX_RANKS, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* ntkmem merge: serial, no MPI. */
static int merge_main(int argc, char **argv)
{
    const char *out = NULL;
    int force = 0, nin = 0, mixed = 0;
    const char **in = calloc((size_t)argc, sizeof *in);
    if (!in) return 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--allow-mixed-versions")) mixed = 1;
        else if (argv[i][0] != '-') in[nin++] = argv[i];
        else {
            fprintf(stderr, "ntkmem merge: unknown or incomplete option '%s'\n", argv[i]);
            free(in);
            return 2;
        }
    }
    if (!out || nin < 1) {
        fprintf(stderr, "usage: ntkmem merge A.csv B.csv ... -o ALL.csv [--force] "
                        "[--allow-mixed-versions]\n");
        free(in);
        return 2;
    }
    nm_err e = {0, ""};
    nm_merge_stats st;
    nm_merge_opts o = {in, nin, out, force, mixed};
    int rc = nm_merge(&o, &st, &e);
    free(in);
    if (rc) {
        fprintf(stderr, "ntkmem merge: error: %s\n", e.msg);
        return 2;
    }
    printf("merged %d file%s: %ld rows read, %ld duplicate rows dropped (byte-identical copies), "
           "%ld rows of other executions of a run dropped, %ld rows of %ld runs written to %s\n",
           nin, nin == 1 ? "" : "s", st.rows_in, st.dup_rows, st.superseded_rows, st.rows_out,
           st.runs, out);
    if (st.search) {
        char sp[NM_PATH_MAX + 16];
        nm_search_summary_path(out, sp, sizeof sp);
        printf("a search's shards: %ld summary rows (one per point) written to %s\n",
               st.summary_rows, sp);
    }
    if (st.runs_incomplete)
        printf("%ld runs have no final row in any input (interrupted); run the sweep with "
               "--out %s --resume to finish them\n",
               st.runs_incomplete, out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
        printf("ntkmem %s\n", nm_version);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--help-settings")) {
        help_settings();
        return 0;
    }
    if (!strcmp(argv[1], "--help-columns")) {
        help_columns();
        return 0;
    }
    if (!strcmp(argv[1], "merge")) return merge_main(argc, argv);
    nm_run_opts o;
    memset(&o, 0, sizeof o);
    if (!strcmp(argv[1], "validate")) o.validate = 1;
    else if (strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "ntkmem: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--out") && more) o.out = argv[++i];
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--dry-run")) o.dry_run = 1;
        else if (!strcmp(a, "--keep-foreign")) o.keep_foreign = 1;
        else if (!strcmp(a, "--allow-mixed-versions")) o.mixed_versions = 1;
        else if (!strcmp(a, "--shard") && more) {
            if (parse_shard(argv[++i], &o)) {
                fprintf(stderr, "ntkmem: --shard needs i/n with 0 <= i < n, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--ranks") && more) {
            if (parse_count("--ranks", argv[++i], &o.ranks)) return 2;
        } else if (!strcmp(a, "--ranks-per-node") && more) {
            if (parse_count("--ranks-per-node", argv[++i], &o.ranks_per_node)) return 2;
        }
        else if (a[0] != '-' && !o.config) o.config = a;
        else {
            fprintf(stderr, "ntkmem: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.config) {
        fprintf(stderr, "ntkmem: %s needs a SWEEP.yaml file\n", argv[1]);
        return 2;
    }
    if (!o.validate && (o.ranks || o.ranks_per_node)) { /* a run uses the ranks it has */
        fprintf(stderr, "ntkmem: --ranks and --ranks-per-node are options of validate; a run "
                        "uses the ranks it is launched on\n");
        return 2;
    }
    if (o.resume && o.force) {
        fprintf(stderr, "ntkmem: --resume and --force contradict each other\n");
        return 2;
    }
    /* Keep freed memory for the next allocation instead of handing it back
     * to the kernel: a sweep allocates and frees the same Gram buffers run
     * after run, and refaulting them cost more than the builds at small m
     * (m = 200, q = 16384, P = 2: 3.8 s a run, 2.2 s with the heap kept;
     * docs/benchmarks.md).  Blocks up to 32 MiB (glibc's largest mmap
     * threshold) come from the heap; the heap is not trimmed below the peak,
     * which the memory guard already budgets for. */
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
    MPI_Init(&argc, &argv);
    /* let MPI errors come back as codes so they are reported, not aborted on */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = nm_coord_main(&o, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
