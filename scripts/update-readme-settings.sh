#!/bin/bash
# Regenerate the settings table of docs/settings.md from the settings table in
# src/io/params.c (via ntkmem --help-settings).  tests/t_docs.sh fails when
# the table is out of date.  (The name is historical: the table used to live
# in README.md.)
set -eu
cd "$(dirname "$0")/.."
/usr/bin/python3 - build/ntkmem docs/settings.md <<'PY'
import subprocess, sys
table = subprocess.run([sys.argv[1], "--help-settings"], check=True, capture_output=True,
                       text=True).stdout.strip()
s = open(sys.argv[2]).read()
a, b = s.index("<!-- settings:begin -->"), s.index("<!-- settings:end -->")
open(sys.argv[2], "w").write(s[:a] + "<!-- settings:begin -->\n" + table + "\n" + s[b:])
PY
