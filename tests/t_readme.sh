#!/bin/bash
# README.md documents every setting exactly as the settings table defines it
# (regenerate with scripts/update-readme-settings.sh), and names the test
# command CI runs.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
cd "$NTKMEM_ROOT"
"$NTKMEM" --help-settings >/tmp/nm_settings.$$
trap 'rm -f /tmp/nm_settings.$$' EXIT
sed -n '/<!-- settings:begin -->/,/<!-- settings:end -->/p' README.md | sed '1d;$d' | diff - /tmp/nm_settings.$$ \
    || { echo "README settings table is out of date: run scripts/update-readme-settings.sh"; exit 1; }
grep -q '^make check' README.md
grep -q 'make check' .ci/run
