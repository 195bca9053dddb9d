#!/bin/bash
# Probe the build environment before the first compile (called by make with
# the variables in the environment):
#   scripts/check-build-env.sh ntkmem   MPI, BLAS + LAPACK, ScaLAPACK, ELPA,
#                                       PARPACK, libyaml, Random123
#   scripts/check-build-env.sh check    the `check` unit-test library
# Each library is one tiny program compiled and linked by $MPICC exactly as
# the real build links it; the first one that fails stops with ONE line on
# stderr naming the make variable to set and an example, never the
# compiler's page of errors.  Exit 0: all present.
set -u
# in the build directory (NM_PROBE_DIR): /tmp may be mounted noexec
T=$(mktemp -d "${NM_PROBE_DIR:-${TMPDIR:-/tmp}}/probe.XXXXXX") || exit 1
trap '[ -n "${NM_PROBE_KEEP:-}" ] || rm -rf "$T"' EXIT
# shellcheck disable=SC2086 # the variables are word lists of flags
build() { # SOURCE FLAGS...: compile (and link, when SOURCE has a main) quietly
    local src=$1; shift
    printf '%s\n' "$src" >"$T/p.c"
    $MPICC $CFLAGS "$T/p.c" "$@" -o "$T/p" >"$T/log" 2>&1
}
die() { # WHAT VAR EXAMPLE: the one line
    fail "$1" "set $2 (in config.mk or on the make command line), e.g.  $3"
}
fail() { # WHAT HINT
    echo "ntkmem build: $1: $2" >&2
    exit 1
}
# a reference to each symbol, so the linker must resolve it (autoconf style)
calls() { local s; for s; do printf 'char %s(void); ' "$s"; done
    printf 'int main(void) { long r = 0; '
    for s; do printf 'r += (long)&%s; ' "$s"; done
    printf 'return r == 0; }'; }
link() { # VAR EXAMPLE WHAT SYMBOLS -- FLAGS...
    local var=$1 ex=$2 what=$3 syms=()
    shift 3
    while [ "$1" != -- ]; do syms+=("$1"); shift; done
    shift
    build "$(calls "${syms[@]}")" "$@" $LDFLAGS $FC_LIBS -lm ||
        die "cannot link $what (${syms[*]}) with $var=\"${!var}\"" "$var" "$ex"
}
header() { # VAR EXAMPLE HEADER FLAGS...
    local var=$1 ex=$2 h=$3
    shift 3
    build "#include <$h>" -fsyntax-only "$@" ||
        die "$h not found with $var=\"${!var}\"" "$var" "$ex"
}

case ${1:-} in
ntkmem)
    # MPI: the compiler wrapper itself (mpicc -showme shows what it adds)
    if ! build '#include <mpi.h>
int main(int c, char **v) { MPI_Init(&c, &v); return MPI_Finalize(); }'; then
        why=$(grep -m1 -iE 'not found|no such|error' "$T/log" | sed 's/^.*line [0-9]*: //' | cut -c1-120)
        die "MPICC=\"$MPICC\" cannot build an MPI program${why:+ ($why)}" MPICC \
            "MPICC=mpicc after 'module load openmpi' (Cray: MPICC=cc)"
    fi
    [ -z "$FC_LIBS" ] || build 'int main(void) { return 0; }' $LDFLAGS $FC_LIBS -lm ||
        die "cannot link the Fortran runtime FC_LIBS=\"$FC_LIBS\"" FC_LIBS \
            "FC_LIBS=-lgfortran (GCC) or FC_LIBS=\"-lifcore -lifport\" (Intel), or FC_LIBS= when MPICC adds it"
    header BLAS_CFLAGS 'BLAS_CFLAGS=-I$(OPENBLAS_ROOT)/include' cblas.h $BLAS_CFLAGS
    link BLAS_LIBS 'BLAS_LIBS="-L$(OPENBLAS_ROOT)/lib -lopenblas" (BLAS with CBLAS and LAPACK)' \
        'BLAS + LAPACK' cblas_dgemm dsyevd_ -- $BLAS_LIBS
    # the eigensolver lapack2 calls LAPACK's two-stage reduction, new in 3.7 (2016)
    link BLAS_LIBS 'BLAS_LIBS="-L$(OPENBLAS_ROOT)/lib -lopenblas" (OpenBLAS >= 0.2.20 bundles LAPACK 3.7+)' \
        'LAPACK >= 3.7' dsytrd_sy2sb_ dsytrd_sb2st_ -- $BLAS_LIBS
    link SCALAPACK_LIBS 'SCALAPACK_LIBS="-L$(SCALAPACK_ROOT)/lib -lscalapack"' \
        ScaLAPACK pdgemm_ descinit_ -- $SCALAPACK_LIBS $BLAS_LIBS
    header ELPA_CFLAGS 'ELPA_CFLAGS=-I$(ELPA_ROOT)/include/elpa-2023.05.001 (the directory holding elpa/elpa.h)' \
        elpa/elpa.h $ELPA_CFLAGS
    link ELPA_LIBS 'ELPA_LIBS="-L$(ELPA_ROOT)/lib -lelpa"' \
        ELPA elpa_init -- $ELPA_LIBS $SCALAPACK_LIBS $BLAS_LIBS
    link PARPACK_LIBS 'PARPACK_LIBS="-L$(ARPACK_NG_ROOT)/lib -lparpack -larpack"' \
        'PARPACK (arpack-ng built with MPI)' pdsaupd_ -- $PARPACK_LIBS $BLAS_LIBS
    header YAML_CFLAGS 'YAML_CFLAGS=-I$(LIBYAML_ROOT)/include' yaml.h $YAML_CFLAGS
    link YAML_LIBS 'YAML_LIBS="-L$(LIBYAML_ROOT)/lib -lyaml"' \
        libyaml yaml_parser_initialize -- $YAML_LIBS
    header RANDOM123_CFLAGS 'RANDOM123_CFLAGS=-I$(RANDOM123_ROOT)/include (header-only)' \
        Random123/philox.h $RANDOM123_CFLAGS
    # linked is not enough: a library found at link time (-L) but not at run
    # time (no LD_LIBRARY_PATH, no rpath) would fail every test later
    if build "$(calls cblas_dgemm pdgemm_ elpa_init pdsaupd_ yaml_parser_initialize)" \
        $ELPA_LIBS $PARPACK_LIBS $SCALAPACK_LIBS $BLAS_LIBS $YAML_LIBS $LDFLAGS $FC_LIBS -lm &&
        ! "$T/p" >"$T/log" 2>&1; then
        why=$(grep -m1 . "$T/log" | sed 's/^[^:]*: //' | cut -c1-120)
        fail "the libraries link but a program using them does not start${why:+ ($why)}" \
            "load their modules (LD_LIBRARY_PATH), or add -Wl,-rpath,DIR beside each -LDIR in the *_LIBS"
    fi
    ;;
check)
    header CHECK_CFLAGS 'CHECK_CFLAGS=-I$(CHECK_ROOT)/include' check.h $CHECK_CFLAGS
    link CHECK_LIBS 'CHECK_LIBS="-L$(CHECK_ROOT)/lib -lcheck" (make check only)' \
        'the check unit-test library' srunner_create -- $CHECK_LIBS
    ;;
*)
    echo "usage: $0 ntkmem|check" >&2
    exit 2
    ;;
esac
exit 0
