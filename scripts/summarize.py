#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Sum the results of every suite into one closing line.

Reads meson testlog.json files (one JSON object per line; a cmocka test
binary's own "[  PASSED  ] N test(s)" lines count its cases) and pytest
JUnit XML files. Prints per-suite lines and then "N passed, N failed,
N skipped"; exits 1 when anything failed or a log is missing.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET

CMOCKA_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test", re.M)
CMOCKA_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test", re.M)
CMOCKA_SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) test", re.M)


def meson_counts(path):
    p = f = s = 0
    failed_names = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            result = t.get("result")
            out = (t.get("stdout") or "") + "\n" + (t.get("stderr") or "")
            mp, mf, ms = (CMOCKA_PASSED.search(out), CMOCKA_FAILED.search(out),
                          CMOCKA_SKIPPED.search(out))
            if result == "SKIP":
                s += 1
            elif mp or mf:
                # A cmocka binary: count its cases; a crash after them
                # still counts as one failure.
                cp = int(mp.group(1)) if mp else 0
                cf = int(mf.group(1)) if mf else 0
                cs = int(ms.group(1)) if ms else 0
                p += cp
                f += cf
                s += cs
                if result != "OK" and cf == 0:
                    f += 1
                if result != "OK":
                    failed_names.append(t.get("name"))
            elif result in ("OK", "EXPECTEDFAIL"):
                p += 1
            else:
                f += 1
                failed_names.append(t.get("name"))
    return p, f, s, failed_names


def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    p = f = s = 0
    failed_names = []
    for suite in suites:
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                f += 1
                failed_names.append(case.get("classname", "") + "::" + case.get("name", ""))
            elif case.find("skipped") is not None:
                s += 1
            else:
                p += 1
    return p, f, s, failed_names


def main(args):
    tp = tf = ts = 0
    ok = True
    paths = []
    for a in args:
        if a.startswith("--failed-builds="):
            n = int(a.split("=", 1)[1])
            if n:
                print(f"{n} build(s) failed")
            tf += n
        else:
            paths.append(a)
    for path in paths:
        try:
            if path.endswith(".xml"):
                p, f, s, names = junit_counts(path)
            else:
                p, f, s, names = meson_counts(path)
        except (OSError, ValueError, ET.ParseError) as e:
            print(f"{path}: cannot read results: {e}")
            tf += 1
            ok = False
            continue
        print(f"{path}: {p} passed, {f} failed, {s} skipped")
        for n in names:
            print(f"  failed: {n}")
        tp, tf, ts = tp + p, tf + f, ts + s
    if not paths:
        print("no test results were produced")
        tf += 1
    print(f"{tp} passed, {tf} failed, {ts} skipped")
    return 0 if ok and tf == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
