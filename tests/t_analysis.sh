#!/bin/bash
# analysis/: fits (slope within its reported error on synthetic power laws,
# critical-width interpolation on a hand-made table), CSV errors naming the
# file and column, plot.py end to end (PNG + PDF) and skipped figures.
# Debian's python3 with numpy + matplotlib (not whatever python3 is on PATH).
set -eu
cd "$(dirname "$0")/.."
. tests/env.sh
nm_once_per_suite "tests analysis/ only, no ntkmem binary"
exec /usr/bin/python3 analysis/test_analysis.py
