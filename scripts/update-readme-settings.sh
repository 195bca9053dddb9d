#!/bin/bash
# Regenerate the tables generated from the settings table in src/io/params.c
# (via ntkmem --help-settings) in README.md and docs/*.md:
#   <!-- settings:begin --> ... <!-- settings:end -->      the whole table
#   <!-- keys:NAME:begin --> ... <!-- keys:NAME:end -->     the keys experiment
#                                                          NAME reads
# With --check, change nothing and exit 1 naming each file that is out of date
# (tests/t_docs.sh).  (The name is historical: the table used to live in
# README.md.)
set -eu
cd "$(dirname "$0")/.."
/usr/bin/python3 - "${NTKMEM:-build/ntkmem}" "${1:-}" README.md docs/*.md <<'PY'
import re, subprocess, sys

ntkmem, mode, files = sys.argv[1], sys.argv[2], sys.argv[3:]
table = subprocess.run([ntkmem, "--help-settings"], check=True, capture_output=True,
                       text=True).stdout.strip()
rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]

def keys_of(exp):
    """The keys experiment exp reads, in the table's order."""
    return [r[0] for r in rows
            if r[3] == "all" or exp in [e.strip() for e in r[3].split(",")]]

def keys_block(m):
    exp = m.group(1)
    ks = keys_of(exp)
    if not ks:
        sys.exit(f"no settings for experiment {exp!r}")
    return (f"<!-- keys:{exp}:begin -->\nSettings (types, ranges, defaults: "
            f"[settings.md](settings.md)): " + ", ".join(ks) + ".\n"
            f"<!-- keys:{exp}:end -->")

stale = []
for f in files:
    s = open(f).read()
    t = re.sub(r"<!-- settings:begin -->.*?<!-- settings:end -->",
               lambda m: "<!-- settings:begin -->\n" + table + "\n<!-- settings:end -->", s,
               flags=re.S)
    t = re.sub(r"<!-- keys:(\w+):begin -->.*?<!-- keys:\1:end -->", keys_block, t, flags=re.S)
    if t != s:
        stale.append(f)
        if mode != "--check":
            open(f, "w").write(t)
if mode == "--check" and stale:
    for f in stale:
        print(f"{f}: a table generated from the settings is out of date: "
              "run scripts/update-readme-settings.sh")
    sys.exit(1)
PY
