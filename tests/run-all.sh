#!/bin/bash
# The whole suite (make check).  Every build/test_* check program runs as one
# rank; programs named test_mpi_* also run on 2, 3 and 4 ranks
# (oversubscribed).  Then every tests/t_*.sh end-to-end script runs.
# Prints PASSED/FAILED per item and a final count; exit status = failures.
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
pass=0; fail=0; failed=()
log=build/test-logs; mkdir -p $log
item() { # name, command...
    local name=$1; shift
    local t0=$SECONDS
    if "$@" >"$log/$name.log" 2>&1; then
        pass=$((pass + 1)); printf '%-44s PASSED (%ds)\n' "$name" $((SECONDS - t0))
    else
        fail=$((fail + 1)); failed+=("$name")
        printf '%-44s FAILED (%ds)\n' "$name" $((SECONDS - t0))
        tail -n 25 "$log/$name.log" | sed 's/^/    | /'
    fi
}
for t in build/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    case $n in
    test_mpi_*) for np in 1 2 3 4; do item "$n.np$np" nm_mpirun $np "$t"; done ;;
    *) item "$n" nm_mpirun 1 "$t" ;;
    esac
done
for s in tests/t_*.sh; do
    [ -f "$s" ] || continue
    item "$(basename "$s" .sh)" bash "$s"
done
echo "----"
echo "$pass PASSED, $fail FAILED"
[ $fail -eq 0 ] || { printf 'failed: %s\n' "${failed[@]}"; exit 1; }
