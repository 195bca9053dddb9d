#!/bin/bash
# The layers base -> par -> num -> io -> exp -> coord -> main: a file calls
# only files of its own layer or of the layers below it, and no files call
# each other in a circle.  Arrows are read from the symbols the compiler
# wrote (nm on build/obj: what each object uses and what defines it), so a
# call is seen whatever header declared it.  One kind of arrow is left out:
# the experiment table (src/exp/exp.c) naming each experiment's hooks.
#   bash tests/t_layers.sh           check (exit 1 naming each arrow back up and each circle)
#   bash tests/t_layers.sh --graph   also print the module graph (docs/architecture.md)
set -u
. "$(dirname "$0")/env.sh"
cd "$NTKMEM_ROOT" || exit 1
OBJ=$NTKMEM_BUILD/obj
[ -d "$OBJ" ] || { echo "SKIPPED: no objects in $OBJ (make all first)"; exit 77; }
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
tab=$(mktemp)
trap 'rm -f "$tab"' EXIT
# one line per object: path, then "D sym" (defined) and "U sym" (used) words
find "$OBJ" -name '*.o' | sort | while read -r o; do
    printf '%s' "${o#"$OBJ"/}"
    nm -g "$o" | awk '$1 == "U" && $2 ~ /^nm_/ {printf " U %s", $2}
                      $2 ~ /^[TDRBC]$/ && $3 ~ /^nm_/ {printf " D %s", $3}'
    echo
done >"$tab"
$PY - "$tab" "${1:-}" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
layer = {"base": 0, "par": 1, "num": 2, "io": 3, "exp": 4}
def lay(f):
    d = f.split("/")[0]
    return layer.get(d, {"coord.o": 5, "main.o": 6}.get(f, 9))
names = ["base", "par", "num", "io", "exp", "coord", "main"]
owner, uses = {}, {}
for r in rows:
    f = r[0]
    uses[f] = set()
    for k, s in zip(r[1::2], r[2::2]):
        if k == "D": owner[s] = f
        else: uses[f].add(s)
edges = {}
for f, us in uses.items():
    for s in us:
        g = owner.get(s)
        # the registration table lists every experiment's hooks: a table
        # naming its rows, not a call (the experiments call exp.c's helpers)
        if f == "exp/exp.o" and s.endswith("_hooks"): continue
        if g and g != f: edges.setdefault((f, g), set()).add(s)
bad = 0
for (f, g), ss in sorted(edges.items()):
    if lay(g) > lay(f):
        bad += 1
        print("t_layers: arrow back up: %s (%s) calls %s (%s): %s"
              % (f, names[lay(f)], g, names[lay(g)], ", ".join(sorted(ss))))
# circles: strongly connected components of the file graph (Tarjan)
adj = {}
for (f, g) in edges: adj.setdefault(f, []).append(g)
idx, low, st, on, comps, n = {}, {}, [], set(), [], [0]
def visit(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in adj.get(v, []):
        if w not in idx: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: comps.append(sorted(c))
sys.setrecursionlimit(10000)
for v in sorted(uses):
    if v not in idx: visit(v)
for c in comps:
    bad += 1
    print("t_layers: circle: " + " -> ".join(c))
if sys.argv[2] == "--graph":
    files = {}
    for f in uses: files.setdefault(lay(f), []).append(f.split("/")[-1][:-2])
    mod = {}
    for (f, g) in edges:
        if lay(f) != lay(g): mod.setdefault(lay(f), set()).add(lay(g))
    for l in sorted(files, reverse=True):
        below = ", ".join(names[k] for k in sorted(mod.get(l, ()), reverse=True)) or "-"
        print("%-6s calls %-28s | %s" % (names[l], below, " ".join(sorted(files[l]))))
    print("%d files, %d file-to-file arrows, %d back up or in a circle" % (len(uses), len(edges), bad))
if bad:
    print("t_layers: %d arrow(s) back up or circle(s)" % bad); sys.exit(1)
print("t_layers: %d files, %d arrows, none back up, no circle" % (len(uses), len(edges)))
EOF
