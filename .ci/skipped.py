"""Print every skipped test of JUnit XML reports (pytest --junitxml): CI shows what it did not run."""

import sys
import xml.etree.ElementTree as ElementTree

skipped = []
for report in sys.argv[1:]:
    for case in ElementTree.parse(report).iter("testcase"):
        for skip in case.iter("skipped"):
            skipped.append(f"{case.get('classname')}::{case.get('name')}: {skip.get('message', '')}")
print(f"skipped tests: {len(skipped)}")
for line in skipped:
    print(f"  {line}")
