#!/usr/bin/env python3
"""The one table of bench/run.sh: each benchmark's headline figures beside the baseline it
measured in the same run, and the goal where the performance issue set one.

Every run.py calls record() for its headline figures; the rows go, one JSON object per line, to
the file named by $BENCH_SUMMARY, and nowhere when that is unset, so each run.py still works
alone. `bench/summary.py FILE` prints the table of such a file.
"""
import json
import math
import os
import sys


def record(bench, figure, value, unit, baseline=None, baseline_value=None, goal=None):
    """One headline figure; baseline names what baseline_value measured in the same run."""
    path = os.environ.get("BENCH_SUMMARY")
    if not path:
        return
    row = {"bench": bench, "figure": figure, "value": value, "unit": unit,
           "baseline": baseline, "baseline_value": baseline_value, "goal": goal}
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")


def number(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(rows):
    header = ("bench", "figure", "value", "unit", "baseline (same run)", "baseline", "ratio", "goal")
    lines = [header]
    for r in rows:
        ratio = "-"
        if r.get("baseline_value"):
            ratio = f"{r['value'] / r['baseline_value']:.2f}"
        lines.append((r["bench"], r["figure"], number(r["value"]), r["unit"],
                      r.get("baseline") or "-", number(r.get("baseline_value")), ratio,
                      r.get("goal") or ""))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    numeric = {2, 5, 6}
    out = []
    for n, line in enumerate(lines):
        cells = [str(c).rjust(w) if i in numeric and n else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench/summary.py FILE (the JSON lines bench/run.sh collects)")
    with open(sys.argv[1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        sys.exit(f"{sys.argv[1]}: no rows (did every benchmark fail?)")
    print(table(rows))


if __name__ == "__main__":
    main()
