# Sourced by the test scripts: how MPI runs on a test machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1                 # skip the UCX probe: faster start-up
export OMPI_MCA_mpi_yield_when_idle=1   # oversubscribed ranks must not busy-poll
export OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 CK_FORK=no
NTKMEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# NTKMEM_BUILD: the build under test (build, or build/san for make sanitize)
export NTKMEM_BUILD=${NTKMEM_BUILD:-build}
case $NTKMEM_BUILD in /*) ;; *) NTKMEM_BUILD=$NTKMEM_ROOT/$NTKMEM_BUILD ;; esac
export NTKMEM="$NTKMEM_BUILD/ntkmem"
# sanitizer builds: Open MPI's own start-up allocations are not ours to report
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$NTKMEM_ROOT/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# full unwinding at malloc: Open MPI's frames are named, so tests/lsan.supp matches them
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:fast_unwind_on_malloc=0}
# the rank counts of the scripts that compare P = 2..4 with P = 1 (NM_NPS; the
# others: NM_NPS_GT1).  make sanitize runs them at 1 and 3 (serial, and uneven
# shards; the test_mpi_* programs at 3: NTKMEM_UNIT_NPS): make check ran 1..4.
export NTKMEM_TEST_NPS=${NTKMEM_TEST_NPS:-1 2 3 4}
NM_NPS=$NTKMEM_TEST_NPS
NM_NPS_GT1=$(for n in $NM_NPS; do [ "$n" -gt 1 ] && printf '%s ' "$n"; done)
# mpirun with a hard time limit (no-fork check tests have no timeout of their own)
nm_mpirun() { local np=$1; shift; timeout 600 mpirun -np "$np" --oversubscribe "$@"; }
# run a sweep on NP ranks: nm_sweep NP CONFIG OUT.csv LOG [ntkmem options]; the
# log is printed and the call fails when ntkmem fails
nm_sweep() {
    local np=$1 cfg=$2 out=$3 log=$4; shift 4
    nm_mpirun "$np" "$NTKMEM" run "$cfg" --out "$out" "$@" >"$log" 2>&1 || { cat "$log"; return 1; }
}
# a test that does not test the build under test (it builds its own ntkmem,
# or tests no binary) runs once per suite: skipped under make sanitize
# (NTKMEM_BUILD=build/san), which runs the suite again.  $1: why (default:
# it builds its own ntkmem)
nm_once_per_suite() {
    [ "$NTKMEM_BUILD" = "$NTKMEM_ROOT/build" ] ||
        { echo "SKIPPED: ${1:-builds its own ntkmem} (run by make check, not again per build)"; exit 77; }
}
