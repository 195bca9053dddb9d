#!/bin/bash
# Regenerate the tables generated from the settings table in src/io/params.c
# (via ntkmem --help-settings) in README.md and docs/*.md:
#   <!-- settings:begin --> ... <!-- settings:end -->      the whole table
#   <!-- keys:NAME:begin --> ... <!-- keys:NAME:end -->     the keys experiment
#                                                          NAME reads
# and those generated from the CSV column table in src/io/csv.c (via ntkmem
# --help-columns): analysis/columns.json, which tests/csvcmp.py and analysis/
# read (a file in the repository, so that analysis/ runs where ntkmem was never
# built), and <!-- columns:begin --> ... <!-- columns:end --> in docs/*.md.
# With --check, change nothing and exit 1 naming each file that is out of date
# (tests/t_docs.sh).  (The name is historical: the table used to live in
# README.md.)
set -eu
cd "$(dirname "$0")/.."
/usr/bin/python3 - "${NTKMEM:-build/ntkmem}" "${1:-}" README.md docs/*.md <<'PY'
import json, re, subprocess, sys

ntkmem, mode, files = sys.argv[1], sys.argv[2], sys.argv[3:]
table = subprocess.run([ntkmem, "--help-settings"], check=True, capture_output=True,
                       text=True).stdout.strip()
rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
columns_json = subprocess.run([ntkmem, "--help-columns"], check=True, capture_output=True,
                              text=True).stdout
columns = json.loads(columns_json)["columns"]

def columns_table():
    out = ["| column | meaning |", "|---|---|"]
    for c in columns:
        out.append(f"| `{c['name']}` | {c['help']} |")
        if c["name"] == [x for x in columns if x["group"] == "lead"][-1]["name"]:
            out.append("| every setting that applies | `m, d, q, ...` as resolved (relative "
                       "sizes already turned into m and q); not paths and memory limits |")
    out.append("| metrics | experiment-specific: [experiments.md](experiments.md); "
               "those named `seconds_...` are timings |")
    return "\n".join(out)

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
    t = re.sub(r"<!-- columns:begin -->.*?<!-- columns:end -->",
               lambda m: "<!-- columns:begin -->\n" + columns_table() + "\n<!-- columns:end -->",
               t, flags=re.S)
    if t != s:
        stale.append(f)
        if mode != "--check":
            open(f, "w").write(t)
cj = "analysis/columns.json"
try:
    old = open(cj).read()
except OSError:
    old = None
if old != columns_json:
    stale.append(cj)
    if mode != "--check":
        open(cj, "w").write(columns_json)
if mode == "--check" and stale:
    for f in stale:
        print(f"{f}: generated from ntkmem's tables and out of date: "
              "run scripts/update-readme-settings.sh")
    sys.exit(1)
PY
