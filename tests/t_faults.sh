#!/bin/bash
# Write failures on rank 0 reach every rank: a full device (/dev/full), a full
# file system (a 64 KiB tmpfs) and a file size limit (prlimit --fsize, to fail
# the single row of onestep/construct/ntk_spectrum after the header) each end
# the sweep in time with the reason (strerror) and no word of a signal; the
# CSV left behind resumes to the uninterrupted result, and a failed .npy or
# resume rewrite leaves no half-written file or temporary behind.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); M=$T/mnt; mkdir "$M"
trap 'umount "$M" 2>/dev/null; rm -rf "$T"' EXIT
mount -t tmpfs -o size=64k tmpfs "$M" 2>/dev/null ||
    { echo "SKIPPED: cannot mount a tmpfs (needs root)"; exit 77; }
# LIM: a file size limit in bytes for the ranks of run2 (not mpirun's: its
# PMIx files would exceed it), with TCP between the ranks since the backing
# files of the shared-memory transport would exceed it too
LIM=''
run2() {
    env ${LIM:+OMPI_MCA_btl=self,tcp} timeout 300 \
        mpirun -np 2 --oversubscribe ${LIM:+prlimit --fsize=$LIM} "$NTKMEM" run "$@"
}
# fails (not by the timeout: 124 = a hang), says why, and claims no signal
expect_fail() { # LOG PATTERN ntkmem-run-args...
    local log=$1 pat=$2 rc=0; shift 2
    run2 "$@" >"$log" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$log"; echo "exit status $rc"; return 1; }
    grep -q -- "$pat" "$log" || { cat "$log"; echo "no '$pat' in the output"; return 1; }
    if grep -q "stopped by a signal" "$log"; then cat "$log"; echo "claims a signal"; return 1; fi
}
fill() { # leave about $1 KiB free on the tmpfs
    rm -f "$M/fill"; head -c $(( (60 - $1) * 1024 )) /dev/zero >"$M/fill" 2>/dev/null || true
}
cat >"$T/one.yaml" <<'EOF'
experiment: onestep
seed: 11
fixed: {d: 16, q: 16, m: 16}
EOF
cat >"$T/con.yaml" <<'EOF'
experiment: construct
seed: 3
fixed: {d: 5, m: 40, method: baum}
EOF
cat >"$T/spec.yaml" <<'EOF'
experiment: ntk_spectrum
seed: 11
fixed: {d: 7, m: 20, q: 13}
EOF
DEMO=$NTKMEM_ROOT/configs/demo.yaml

# 1. /dev/full: the header cannot be written
for c in "$DEMO" "$T/one.yaml" "$T/con.yaml" "$T/spec.yaml"; do
    expect_fail "$T/full.log" "/dev/full: No space left on device" "$c" --out /dev/full --force
done

# 2. a full tmpfs mid-sweep: stops at once, and --resume with space again
#    gives the uninterrupted CSV
run2 "$DEMO" --out "$T/ref.csv" >/dev/null 2>&1
fill 8
expect_fail "$T/tmpfs.log" "No space left on device" "$DEMO" --out "$M/demo.csv"
grep -q "continue with --resume" "$T/tmpfs.log" || { cat "$T/tmpfs.log"; exit 1; }
[ "$(grep -c "): FAILED" "$T/tmpfs.log")" -le 1 ] || { cat "$T/tmpfs.log"; echo "went on after the disk was full"; exit 1; }
rm -f "$M/fill"
run2 "$DEMO" --out "$M/demo.csv" --resume >"$T/r.log" 2>&1 || { cat "$T/r.log"; exit 1; }
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$M/demo.csv" --rtol 0

# 3. the one row of onestep/construct/ntk_spectrum fails after the header
for c in one con spec; do
    run2 "$T/$c.yaml" --out "$T/$c.csv" >/dev/null 2>&1
    LIM=$(( $(head -1 "$T/$c.csv" | wc -c) + 8 ))
    expect_fail "$T/$c.log" "File too large" "$T/$c.yaml" --out "$T/$c.lim.csv"
    LIM=''
done

# 4. a .npy that does not fit leaves no truncated file and no temporary
cat >"$T/save.yaml" <<EOF
experiment: construct
seed: 3
fixed: {d: 20, m: 2000, method: baum, save_weights: "$M/w_{point}.npy"}
EOF
fill 4
expect_fail "$T/npy.log" "w_0_W.npy: No space left on device" "$T/save.yaml" --out "$T/save.csv"
if ls -A "$M" | grep -E 'npy|tmp'; then echo "left a partial .npy or a temporary"; exit 1; fi

# 5. a resume rewrite on a full disk: the reason, the old file untouched, no temporary
#    (a row of another sweep first, kept by --keep-foreign: the file must be
#    rewritten -- a finished file alone needs no write at all)
rm -f "$M/fill"
run2 "$T/one.yaml" --out "$M/r.csv" >/dev/null 2>&1
{ head -1 "$M/r.csv"; sed -n 2p "$M/r.csv" | sed 's/^[0-9a-f]\{16\}/0123456789abcdef/'; sed 1d "$M/r.csv"; } >"$T/r0.csv"
cp "$T/r0.csv" "$M/r.csv"
head -c 65536 /dev/zero >"$M/fill" 2>/dev/null || true
expect_fail "$T/rw.log" "No space left on device" "$T/one.yaml" --out "$M/r.csv" --resume --keep-foreign
cmp "$M/r.csv" "$T/r0.csv"
if ls -A "$M" | grep -q tmp; then ls -la "$M"; echo "temporary left behind"; exit 1; fi
