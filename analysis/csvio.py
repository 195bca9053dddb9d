"""Read ntkmem CSV files (docs/usage.md, "CSV columns").

The column groups are read from each file's own header: src/io/csv.c
(nm_csv_header) writes the run's lead columns, then the settings that are part
of the run's identity, then the run's description, then the experiment's
metrics.  The lead and description columns come from ntkmem's column table
(analysis/columns.json, written by `ntkmem --help-columns` through
scripts/update-readme-settings.sh and checked current by tests/t_docs.sh), so
that this runs where ntkmem was never built.  A setting and a metric may share
a name, so columns are split by position into settings and metrics rather than
looked up by name in one dict.
"""

import csv
import json
import os
import sys

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "columns.json")) as _f:
    _TABLE = json.load(_f)
LEAD = [c["name"] for c in _TABLE["columns"] if c["group"] == "lead"]
META = [c["name"] for c in _TABLE["columns"] if c["group"] == "meta"]
HOW = {c["name"] for c in _TABLE["columns"] if c["how"]}
TIME_PREFIX = _TABLE["time_prefix"]
LEAD_LAST, META_FIRST, META_LAST = LEAD[-1], META[0], META[-1]  # group anchors


def is_how(name):
    """A column two executions of one run may differ in (ranks, threads,
    version, times): not part of what the run computed."""
    return name in HOW or name.startswith(TIME_PREFIX)

USED_LEAD = ("key", "point", "repeat", "experiment")  # read by this module
USED_META = ("status", "final")


class CsvError(Exception):
    """A CSV that cannot be used; the message names the file (and line/column)."""


class Row:
    """One CSV row: .settings (str values), .metrics (floats), .meta, .lead."""

    __slots__ = ("path", "line", "lead", "settings", "meta", "metrics")

    def __init__(self, path, line, lead, settings, meta, metrics):
        self.path, self.line = path, line
        self.lead, self.settings, self.meta, self.metrics = lead, settings, meta, metrics

    @property
    def experiment(self):
        return self.lead["experiment"]

    @property
    def repeat(self):
        return int(self.lead["repeat"])

    def setting(self, name):
        """A setting as a float (numbers) or its string (enums, bools)."""
        if name not in self.settings:
            raise CsvError(f"{self.path}: missing column '{name}' (a setting of "
                           f"experiment '{self.experiment}')")
        v = self.settings[name]
        try:
            return float(v)
        except ValueError:
            return v

    def metric(self, name):
        if name not in self.metrics:
            raise CsvError(f"{self.path}: missing column '{name}' (a metric of "
                           f"experiment '{self.experiment}')")
        return self.metrics[name]


def _num(path, line, col, s):
    try:
        return float(s)
    except ValueError:
        raise CsvError(f"{path}:{line}: column '{col}': not a number: '{s}'") from None


def read(path):
    """All rows of one ntkmem CSV.  Raises CsvError naming the file for a
    missing/unreadable/empty file, a header without the fixed ntkmem columns,
    a row with the wrong number of fields or a non-numeric metric.  A last
    line without its newline (a run still writing) is skipped with a note."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise CsvError(f"{path}: cannot read: {e.strerror}") from None
    if not text.strip():
        raise CsvError(f"{path}: empty file (no header line)")
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines)
    header = next(reader)
    try:
        i_set = header.index(LEAD_LAST) + 1
        i_meta = header.index(META_FIRST, i_set)
        i_met = header.index(META_LAST, i_meta) + 1
    except ValueError:
        raise CsvError(f"{path}: the header lacks the columns {LEAD_LAST}, {META_FIRST} "
                       f"and {META_LAST} in that order (not an ntkmem CSV?)") from None
    lead_cols, meta_cols = header[:i_set], header[i_meta:i_met]
    for c in USED_LEAD + USED_META:
        if c not in (lead_cols if c in USED_LEAD else meta_cols):
            raise CsvError(f"{path}: missing column '{c}' in the header "
                           f"(not an ntkmem CSV?)")
    set_cols = header[i_set:i_meta]
    met_cols = header[i_met:]
    rows = []
    for lineno, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            if lineno == len(lines) and not lines[-1].endswith("\n"):
                print(f"note: {path}:{lineno}: incomplete last line skipped "
                      f"(run still writing?)", file=sys.stderr)
                break
            raise CsvError(f"{path}:{lineno}: malformed row: {len(fields)} fields, "
                           f"the header has {len(header)}")
        lead = dict(zip(lead_cols, fields[:i_set]))
        settings = dict(zip(set_cols, fields[i_set:i_meta]))
        meta = dict(zip(meta_cols, fields[i_meta:i_met]))
        metrics = {c: _num(path, lineno, c, v) for c, v in zip(met_cols, fields[i_met:])}
        for c in ("repeat", "point"):
            _num(path, lineno, c, lead[c])
        _num(path, lineno, "final", meta["final"])
        rows.append(Row(path, lineno, lead, settings, meta, metrics))
    return rows


def final_rows(paths, experiment, statuses=("ok",), settings=(), metrics=()):
    """End-of-run rows (final == 1, status in `statuses`) of `experiment` from
    every file.  Files holding that experiment must have the named settings
    and metrics columns, else CsvError naming the file and the column.
    A run (its `key`) found in more than one file counts once, so shard CSVs
    and their merge can be given together without double weight."""
    out, seen, dups = [], set(), 0
    for p in paths:
        rows = [r for r in read(p) if r.experiment == experiment]
        for r in rows[:1]:  # columns are per file: check on its first row
            for s in settings:
                r.setting(s)
            for mname in metrics:
                r.metric(mname)
        for r in rows:
            if r.meta["final"] != "1" or r.meta["status"] not in statuses:
                continue
            if r.lead["key"] in seen:
                dups += 1
                continue
            seen.add(r.lead["key"])
            out.append(r)
    if dups:
        print(f"note: {dups} {experiment} runs appear in more than one file; "
              f"counted once", file=sys.stderr)
    return out

