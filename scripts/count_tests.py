#!/usr/bin/env python3
"""Sums test cases over every suite run in the given meson build folders.

Catch2 writes one JUnit file per meson test (the path after --out on its command line). A meson test that failed
without a failing case in its JUnit file (a crash, a sanitizer abort, a timeout) counts as one
more failure, so nothing that went wrong can hide behind a green count.

A FILE.xml argument counts a standalone JUnit report (e.g. from scripts/ops-checks.sh).
`--failed-step NAME` adds one failure for a step that failed before any test ran.

Prints per-suite lines, then the closing `tests: N passed, M failed[, K skipped]`.
Exit status: 0 when nothing failed and something ran, 1 otherwise.
"""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET


def junit_counts(path):
    passed = failed = skipped = 0
    failures = []
    for case in ET.parse(path).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(case.get("name"))
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def report(total, label, passed, failed, skipped, failures):
    """Prints one suite's line and its failures, and adds its counts to the total."""
    print(f"{label}: {passed} passed, {failed} failed, {skipped} skipped")
    for failure in failures:
        print(f"  FAILED: {failure}")
    total[0] += passed
    total[1] += failed
    total[2] += skipped


def main(args):
    total = [0, 0, 0]
    build_dirs = []
    while args:
        arg = args.pop(0)
        if arg == "--failed-step":
            step = args.pop(0)
            print(f"step {step}: failed before its tests could run")
            total[1] += 1
        elif arg.endswith(".xml"):
            # A standalone JUnit report, e.g. from scripts/ops-checks.sh.
            path = pathlib.Path(arg)
            if not path.exists():
                print(f"{path}: missing report (its step did not run)")
                total[1] += 1
                continue
            report(total, path, *junit_counts(path))
        else:
            build_dirs.append(arg)
    for build in map(pathlib.Path, build_dirs):
        log = build / "meson-logs" / "testlog.json"
        if not log.exists():
            print(f"{build}: no test log (the suite did not run)")
            total[1] += 1
            continue
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            name, result = entry["name"], entry["result"]
            # Catch2 tests name their report with --out; other tests count as one test each.
            command = entry.get("command", [])
            junit = None
            if "--out" in command:
                junit = pathlib.Path(command[command.index("--out") + 1])
            passed = failed = skipped = 0
            failures = []
            if junit is not None and junit.exists():
                passed, failed, skipped, failures = junit_counts(junit)
            elif junit is None and result == "OK":
                passed = 1
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and failed == 0:
                failed += 1
                failures.append(f"{name} exited with {result} (return code {entry.get('returncode')})")
            if result == "SKIP" and (junit is None or not junit.exists()):
                skipped += 1
            report(total, f"{build}/{name}", passed, failed, skipped, failures)
    line = f"tests: {total[0]} passed, {total[1]} failed"
    if total[2]:
        line += f", {total[2]} skipped"
    print(line)
    return 0 if total[1] == 0 and total[0] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
