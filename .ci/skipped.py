"""List every skipped test of JUnit XML reports (pytest --junitxml) and fail when there is one.

CI runs with EDUGRAPH_CI=1, where a missing prerequisite fails its test instead of skipping it: a skip that still
shows up here is a test CI did not run, so CI must not go green. Expected failures (xfail, reported as skipped) count
too. Exit status: 0 no skip, 1 some skip, 2 a report that is missing or no JUnit XML.
"""

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def skipped_tests(report: Path) -> list[str]:
    """``classname::name: message`` of every skipped test case of one report."""
    lines = []
    for case in ElementTree.parse(report).iter("testcase"):
        for skip in case.iter("skipped"):
            lines.append(f"{case.get('classname')}::{case.get('name')}: {skip.get('message', '')}")
    return lines


def main(reports: list[str]) -> int:
    if not reports:
        print("usage: skipped.py REPORT.xml...", file=sys.stderr)
        return 2
    skipped = []
    for report in reports:
        try:
            skipped.extend(skipped_tests(Path(report)))
        except (OSError, ElementTree.ParseError) as error:
            # pytest that died before writing its report ran nothing CI can vouch for
            print(f"error: {report}: no readable JUnit XML report ({error})", file=sys.stderr)
            return 2
    print(f"skipped tests: {len(skipped)}")
    for line in skipped:
        print(f"  {line}")
    if skipped:
        print(f"error: {len(skipped)} test(s) skipped: CI must run every test (see the list above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
