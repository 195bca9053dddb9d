#!/bin/bash
# The documentation is current and its links resolve:
#  - every settings table (between <!-- settings:begin/end --> in README.md and
#    docs/*.md) equals `ntkmem --help-settings`, and every experiment's list of
#    keys in docs/experiments.md (<!-- keys:NAME:begin/end -->) the keys the
#    settings table gives it (regenerate with scripts/update-readme-settings.sh);
#    every experiment has such a list;
#  - the test list of docs/testing.md names exactly the tests in tests/
#    (test_*.c and t_*.sh);
#  - every relative link in README.md, docs/*.md, jobs/README.md and
#    analysis/README.md points at a file that exists, and every #anchor at a
#    heading of its target;
#  - README.md is at most 250 lines, names the test command CI runs
#    (`make check`, as .ci/run does) and its example sweep passes validate;
#  - nothing cites a specification outside the repository.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
cd "$NTKMEM_ROOT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$NTKMEM" --help-settings >"$tmp/settings"

# generated tables: the settings table and each experiment's keys
grep -q '<!-- settings:begin -->' README.md docs/*.md \
    || { echo "no settings table found in README.md or docs/"; exit 1; }
"$NTKMEM_ROOT/scripts/update-readme-settings.sh" --check

# README: size, the test command, the example
lines=$(wc -l <README.md)
[ "$lines" -le 250 ] || { echo "README.md has $lines lines (at most 250: put detail into docs/)"; exit 1; }
grep -q '^make check' README.md || { echo "README.md does not name the test command 'make check'"; exit 1; }
grep -q 'make check' .ci/run
sed -n '/^```yaml/,/^```$/p' README.md | sed '1d;$d' >"$tmp/example.yaml"
[ -s "$tmp/example.yaml" ] || { echo "README.md has no example sweep"; exit 1; }
"$NTKMEM" validate "$tmp/example.yaml" --ranks 2 >"$tmp/validate.out" 2>&1 \
    || { cat "$tmp/validate.out"; echo "README.md's example sweep does not validate"; exit 1; }

# test list, links, anchors, citations
/usr/bin/python3 - "$tmp/settings" <<'PY' || { echo "t_docs: the documentation checks above failed"; exit 1; }
import glob, os, re, sys

bad = []
# every experiment of the settings table has its generated key list
exps = set()
for line in open(sys.argv[1]).read().splitlines()[2:]:
    col = [c.strip() for c in line.strip("|").split("|")][3]
    exps |= {e.strip() for e in col.split(",") if e.strip() != "all"}
have = set(re.findall(r"<!-- keys:(\w+):begin -->", open("docs/experiments.md").read()))
for e in sorted(exps - have):
    bad.append(f"docs/experiments.md: experiment {e} has no <!-- keys:{e}:begin/end --> list")
# tests present = tests listed (bullets "- `name`" or "- `a`, `b`:" in docs/testing.md)
present = {os.path.basename(p)[:-2] for p in glob.glob("tests/test_*.c")}
present |= {os.path.basename(p)[:-3] for p in glob.glob("tests/t_*.sh")}
listed = set()
for line in open("docs/testing.md"):
    m = re.match(r"- ((?:`[A-Za-z0-9_]+`(?:, )?)+)", line)
    if m:
        listed |= {n for n in re.findall(r"`([A-Za-z0-9_]+)`", m.group(1))
                   if n.startswith(("test_", "t_"))}
for n in sorted(present - listed):
    bad.append(f"docs/testing.md: test {n} is in tests/ but not in the list")
for n in sorted(listed - present):
    bad.append(f"docs/testing.md: test {n} is listed but not in tests/")

def slug(h):
    """GitHub's anchor for a heading."""
    h = re.sub(r"[^\w\- ]", "", h.strip().lower())
    return h.replace(" ", "-")

def anchors(path):
    out, seen = set(), {}
    fence = False
    for line in open(path):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        m = re.match(r"#+ (.*)", line)
        if m:
            s = slug(m.group(1))
            k = seen.get(s, 0)
            seen[s] = k + 1
            out.add(s if k == 0 else f"{s}-{k}")
    return out

docs = ["README.md", "jobs/README.md", "analysis/README.md"] + sorted(glob.glob("docs/*.md"))
for d in docs:
    text = open(d).read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, frag = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(d), path)) if path else d
        if not os.path.exists(full):
            bad.append(f"{d}: link {target}: {full} does not exist")
        elif frag and full.endswith(".md") and frag not in anchors(full):
            bad.append(f"{d}: link {target}: no heading #{frag} in {full}")

# no citations of a specification outside the repository
pat = re.compile(r"\[SPEC\b|SPEC section|\(SPEC\b|SPEC [0-9]|\.\./shared/")
for root in ["src", "include", "tests", "analysis", "jobs", "configs", "docs", "scripts"]:
    for p in glob.glob(root + "/**/*", recursive=True):
        if os.path.isfile(p) and not p.endswith(("t_docs.sh", ".png", ".pdf")):
            try:
                for i, line in enumerate(open(p, errors="replace"), 1):
                    if pat.search(line):
                        bad.append(f"{p}:{i}: cites a specification outside the repository")
            except OSError:
                pass
for p in ["README.md", "Makefile"]:
    for i, line in enumerate(open(p), 1):
        if pat.search(line):
            bad.append(f"{p}:{i}: cites a specification outside the repository")

for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
echo "t_docs: PASSED"
