#!/bin/bash
# Shards of a critical-width search (search: qstar), merged and resumed as a
# plain sweep's are:
# 1. with search_guess_previous: false, the search run as 2 shards
#    (--shard 0/2, 1/2) and merged (`ntkmem merge`) gives the rows of the
#    unsharded search (merged alone, for the same order; numbers compared
#    by csvcmp.py, times ignored) and its summary byte for byte
#    (OUT.qstar.csv: the shards' summaries joined by point);
# 2. --resume on the merged CSV with the unsharded config runs nothing and
#    writes the same summary;
# 3. a shard killed mid-row and resumed, merged again: the same summary;
# 4. with search_guess_previous: true (the default) a shard starts a point
#    from its own previous point's q*: it says so, and the probes differ;
# 5. refused: a search's shard merged with a CSV without a summary beside
#    it, shards of two searches (another seed), and two summary rows of one
#    point; a refused merge leaves no output.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
CFG="$NTKMEM_ROOT/tests/configs/qstar-shards.yaml"
cd "$T"
nm_sweep 1 "$CFG" s.csv s.log
nm_sweep 1 "$CFG" a.csv a.log --shard 0/2
nm_sweep 1 "$CFG" b.csv b.log --shard 1/2
"$NTKMEM" merge a.csv b.csv -o m.csv > merge.log || { cat merge.log; exit 1; }
grep -q "3 summary rows (one per point) written to m.qstar.csv" merge.log || { cat merge.log; exit 1; }
"$NTKMEM" merge s.csv -o ms.csv > /dev/null
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" ms.csv m.csv
cmp <(cut -d, -f1-3,6-8 ms.csv) <(cut -d, -f1-3,6-8 m.csv)
cmp s.qstar.csv m.qstar.csv || { echo "FAILED: merged summary differs"; diff s.qstar.csv m.qstar.csv; exit 1; }
echo "2 shards merged: $(($(wc -l < m.csv) - 1)) rows and the summary of the unsharded search"
# 2. the merged CSV is the search's state: resumed, nothing runs
cp m.csv r.csv
nm_sweep 1 "$CFG" r.csv r.log --resume
[ "$(grep -c '^\[ntkmem\] run' r.log || true)" = 0 ] || { echo "FAILED: resume of the merged CSV ran runs"; exit 1; }
cmp s.qstar.csv r.qstar.csv
echo "merged CSV resumed: 0 runs, the same summary"
# 3. shard 0 killed mid-row (40% of its lines kept, the last cut), resumed, merged
n=$(wc -l < a.csv); keep=$((n * 2 / 5))
head -n "$keep" a.csv > k.csv; sed -n "$((keep + 1))p" a.csv | cut -c1-30 | tr -d '\n' >> k.csv
nm_sweep 1 "$CFG" k.csv k.log --shard 0/2 --resume
"$NTKMEM" merge k.csv b.csv -o mk.csv > /dev/null
cmp s.qstar.csv mk.qstar.csv || { echo "FAILED: resumed shard's merge differs"; diff s.qstar.csv mk.qstar.csv; exit 1; }
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" ms.csv mk.csv
echo "shard killed at line $keep of $n, resumed ($(grep -c '^\[ntkmem\] run' k.log) runs again), merged: the same rows and summary"
# 4. the default chains the first probe over the shard's own points
sed 's/search_guess_previous: false/search_guess_previous: true/' "$CFG" > chain.yaml
nm_sweep 1 chain.yaml cs.csv cs.log
nm_sweep 1 chain.yaml ca.csv ca.log --shard 0/2
nm_sweep 1 chain.yaml cb.csv cb.log --shard 1/2
grep -q "search_guess_previous: false gives its rows" ca.log || { cat ca.log; exit 1; }
"$NTKMEM" merge ca.csv cb.csv -o cm.csv > /dev/null
! cmp -s cs.qstar.csv cm.qstar.csv || { echo "FAILED: chained shards gave the unsharded probes (the test no longer shows why the setting exists)"; exit 1; }
echo "search_guess_previous: true: the shards' probes differ from the unsharded search's, as stated"
# 5. refusals
cp s.csv plain.csv
if "$NTKMEM" merge a.csv plain.csv -o x.csv > x.log 2>&1; then echo "FAILED: merged without a summary"; exit 1; fi
grep -q "1 of the 2 inputs have a search summary beside them" x.log || { cat x.log; exit 1; }
sed 's/^seed: 11/seed: 12/' "$CFG" > seed12.yaml
nm_sweep 1 seed12.yaml o.csv o.log --shard 1/2
if "$NTKMEM" merge a.csv b.csv o.csv -o y.csv > y.log 2>&1; then echo "FAILED: merged two searches"; exit 1; fi
grep -q "(one probe of a search) is run .* these CSVs come from different sweeps" y.log || { cat y.log; exit 1; }
# the same rows with another summary row for a point (a summary edited, or
# of another search): refused, naming both summaries
cp b.csv b2.csv; sed '2s/,qstar,0,[0-9.]*,/,qstar,0,9.999,/' b.qstar.csv > b2.qstar.csv
! cmp -s b.qstar.csv b2.qstar.csv
if "$NTKMEM" merge a.csv b.csv b2.csv -o z.csv > z.log 2>&1; then echo "FAILED: merged two summaries of a point"; exit 1; fi
grep -q "point 1 has other summary rows in b.qstar.csv and b2.qstar.csv" z.log || { cat z.log; exit 1; }
[ ! -e z.csv ] && [ ! -e z.qstar.csv ] || { echo "FAILED: a refused merge left z.csv or its summary"; exit 1; }
echo "refused: $(cut -c1-120 z.log)"
echo "refused: $(cut -c1-120 x.log)"
echo "refused: $(cut -c1-120 y.log)"
echo "search merge PASSED"
