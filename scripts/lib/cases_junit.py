#!/usr/bin/env python3
"""Writes the JUnit report of a check script from its cases file.

Usage: cases_junit.py CASES_TSV OUT_XML SUITE
CASES_TSV has one line per case: name, status (pass|fail|skip), seconds, path of its output.
scripts/count_tests.py counts the report into the closing `tests:` line.
"""
import re
import sys
from xml.sax.saxutils import escape, quoteattr

cases_path, out_path, suite = sys.argv[1:4]
# XML 1.0 forbids most control characters, even escaped.
clean = lambda s: re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "?", s)
cases = [line.rstrip("\n").split("\t") for line in open(cases_path) if line.strip()]
failures = sum(c[1] == "fail" for c in cases)
skipped = sum(c[1] == "skip" for c in cases)
total = sum(float(c[2]) for c in cases)
with open(out_path, "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    f.write(f'<testsuites><testsuite name="{suite}" tests="{len(cases)}" failures="{failures}" '
            f'skipped="{skipped}" errors="0" time="{total:.3f}">\n')
    for name, status, secs, out in cases:
        text = clean(open(out, errors="replace").read())
        f.write(f'  <testcase classname="{suite}" name={quoteattr(clean(name))} time="{secs}">')
        if status == "fail":
            f.write(f'<failure message="failed">{escape(text)}</failure>')
        elif status == "skip":
            f.write(f'<skipped message={quoteattr(text.strip())}/>')
        f.write(f'<system-out>{escape(text)}</system-out></testcase>\n')
    f.write("</testsuite></testsuites>\n")
