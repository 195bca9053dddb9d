#!/bin/bash
# The build's library probe (scripts/check-build-env.sh, run by make before
# the first compile): each library made unfindable in turn -- a bad value of
# its make variable on the command line -- stops the build with ONE line
# naming that variable, and nothing else but make's own "***" line.  Also
# a library that links but cannot be loaded at run time (a -L without rpath).
# Runs the probe only (make's config.ok / check.ok targets), in a scratch
# build directory.  tests/t_site_install.sh checks the same on a module stack.
set -eu
. "$(dirname "$0")/env.sh"
nm_once_per_suite
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
probe() { # TARGET VAR=VALUE...: the probe with a fresh build directory; log in $T/log
    local t=$1; shift
    rm -rf "$T/b"
    make -s -C "$NTKMEM_ROOT" B="$T/b" "$@" "$T/b/$t" >"$T/log" 2>&1
}
probe check.ok || { cat "$T/log"; echo "FAILED: this machine's own build environment does not pass the probe (above)"; exit 1; }
fail() { echo "FAILED: $*"; cat "$T/log"; exit 1; }
n=0
expect() { # VAR TARGET VAR=VALUE...: the build stops with one line naming VAR
    local var=$1 t=$2; shift 2
    ! probe "$t" "$@" || fail "($*) the probe passed"
    [ "$(grep -c '^ntkmem build:' "$T/log")" = 1 ] || fail "($*) not one 'ntkmem build:' line"
    grep '^ntkmem build:' "$T/log" | grep -q "set $var " || fail "($*) the line does not name $var"
    ! grep -v -e '^ntkmem build:' -e '^make\(\[[0-9]*\]\)\{0,1\}: \*\*\*' "$T/log" | grep -q . ||
        fail "($*) more output than the one line"
    n=$((n + 1))
}
expect MPICC config.ok MPICC=/nonexistent/mpicc
expect FC_LIBS config.ok FC_LIBS=-lnm_no_fortran
expect BLAS_LIBS config.ok BLAS_LIBS=-lnm_no_blas
expect SCALAPACK_LIBS config.ok SCALAPACK_LIBS=-lnm_no_scalapack
expect ELPA_LIBS config.ok ELPA_LIBS=-lnm_no_elpa
expect PARPACK_LIBS config.ok PARPACK_LIBS=-lnm_no_parpack
expect YAML_LIBS config.ok YAML_LIBS=-lnm_no_yaml
expect CHECK_LIBS check.ok CHECK_LIBS=-lnm_no_check
# a header: ELPA's lies below the directory ELPA_CFLAGS names (Debian's
# /usr/include/elpa, upstream's include/elpa-<version>): without it, not found
if [ -n "$(make -s -C "$NTKMEM_ROOT" --eval 'nm_show: ; @echo $(ELPA_CFLAGS)' nm_show 2>/dev/null)" ]; then
    expect ELPA_CFLAGS config.ok ELPA_CFLAGS=
fi
# linked but not loadable: a library in a directory only -L names
mkdir -p "$T/lib"
echo 'int nm_fake(void) { return 1; }' >"$T/fake.c"
gcc -shared -fPIC "$T/fake.c" -o "$T/lib/libnm_fake.so"
yaml=$(make -s -C "$NTKMEM_ROOT" --eval 'nm_show: ; @echo $(YAML_LIBS)' nm_show)
! probe config.ok YAML_LIBS="$yaml -L$T/lib -Wl,--no-as-needed -lnm_fake -Wl,--as-needed" ||
    fail "(unloadable library) the probe passed"
[ "$(grep -c '^ntkmem build:' "$T/log")" = 1 ] && grep -q 'does not start (.*libnm_fake' "$T/log" &&
    grep -q 'rpath' "$T/log" || fail "(unloadable library) not one line naming the library and rpath"
n=$((n + 1))
# a LAPACK older than 3.7 (no two-stage reduction, which eigensolver lapack2 calls)
printf 'void cblas_dgemm(void) {}\nvoid dsyevd_(void) {}\n' >"$T/old.c"
gcc -shared -fPIC "$T/old.c" -o "$T/lib/libnm_oldlapack.so"
expect BLAS_LIBS config.ok BLAS_LIBS="-L$T/lib -Wl,-rpath,$T/lib -lnm_oldlapack"
grep -q 'LAPACK >= 3.7' "$T/log" || fail "(LAPACK < 3.7) the line does not name the version"
echo "$n missing or unloadable libraries: one line each naming what to set"
