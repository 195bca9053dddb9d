#!/bin/bash
# The whole suite (make check).  Every build/test_* check program runs as one
# rank; programs named test_mpi_* also run on 2, 3 and 4 ranks
# (oversubscribed).  Then every tests/t_*.sh end-to-end script runs.
# Prints PASSED/FAILED/SKIPPED per item and a final count; exit status =
# failures.  An item is SKIPPED when it exits 77 (the automake convention)
# after printing why ("SKIPPED: <reason>"); a skip never counts as a pass.
# NTKMEM_BUILD (default build) picks the build to test (make sanitize).
# NTKMEM_TEST_NPS (default "1 2 3 4") the rank counts of the scripts that
# compare P ranks with one, and NTKMEM_UNIT_NPS (default the same) those of
# the test_mpi_* programs.  make sanitize runs the scripts at 1 and 3 and the
# programs at 3 only (uneven shards; make check runs all four counts at full
# speed), to keep CI within 30 min.
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
pass=0; fail=0; skip=0; failed=()
log=$NTKMEM_BUILD/test-logs; mkdir -p $log
item() { # name, command...
    local name=$1; shift
    local t0=$SECONDS
    local rc=0
    "$@" >"$log/$name.log" 2>&1 || rc=$?
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); printf '%-44s PASSED (%ds)\n' "$name" $((SECONDS - t0))
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1))
        printf '%-44s SKIPPED (%s)\n' "$name" "$(grep -m1 '^SKIPPED' "$log/$name.log" | sed 's/^SKIPPED: *//')"
    else
        fail=$((fail + 1)); failed+=("$name")
        printf '%-44s FAILED (%ds)\n' "$name" $((SECONDS - t0))
        tail -n 25 "$log/$name.log" | sed 's/^/    | /'
    fi
}
for t in "$NTKMEM_BUILD"/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    case $n in
    test_mpi_*) for np in ${NTKMEM_UNIT_NPS:-${NTKMEM_TEST_NPS:-1 2 3 4}}; do item "$n.np$np" nm_mpirun $np "$t"; done ;;
    *) item "$n" nm_mpirun 1 "$t" ;;
    esac
done
for s in tests/t_*.sh; do
    [ -f "$s" ] || continue
    item "$(basename "$s" .sh)" bash "$s"
done
echo "----"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] || { printf 'failed: %s\n' "${failed[@]}"; exit 1; }
