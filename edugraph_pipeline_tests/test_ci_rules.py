"""CI cannot go green by skipping.

A copy of the test package in a folder without ``../shared`` next to it runs tests that read the reference data:
under ``EDUGRAPH_CI=1`` (what `.ci/run` sets) every one of them fails, naming the missing path; without it they
skip. `.ci/skipped.py` lists the skips of a JUnit report and fails on any, and passes a report without one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from edugraph_pipeline_tests.kit.remotes import REPO_ROOT

# Each way a test reaches ../shared: the mark, the release loader of conftest, the worksheet helpers' release and
# label-set loaders, and a real test that takes both through the worksheet fixtures.
PROBES = '''
from edugraph_pipeline_tests.conftest import load_shared_release, requires_shared
from edugraph_pipeline_tests.worksheets.worksheet_helpers import load_release, read_label_sets


@requires_shared
def test_marked():
    pass


def test_conftest_release():
    load_shared_release("v0.21.0")


def test_worksheet_release():
    load_release("v0.21.0")


def test_label_sets():
    read_label_sets()
'''
REAL_TEST = "edugraph_pipeline_tests/worksheets/test_content_formats.py::test_imagefolder_metadata_jsonl"
PROBE_NAMES = ["test_marked", "test_conftest_release", "test_worksheet_release", "test_label_sets"]


def _outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """test name -> (outcome, message) of a JUnit report."""
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child for child in case if child.tag in ("failure", "error", "skipped")]
        outcome, message = (kinds[0].tag, kinds[0].get("message", "")) if kinds else ("passed", "")
        outcomes[case.get("name")] = (outcome, message)
    return outcomes


def _run_copy(copy: Path, report: Path, ci: bool) -> dict[str, tuple[str, str]]:
    environment = {key: value for key, value in os.environ.items() if key != "EDUGRAPH_CI"}
    if ci:
        environment["EDUGRAPH_CI"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "edugraph_pipeline_tests/test_shared_probes.py", REAL_TEST],
        cwd=copy, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == (1 if ci else 0), done.stdout[-3000:]
    return _outcomes(report)


def test_reference_data_tests_fail_under_ci_and_skips_fail_ci(tmp_path):
    copy = tmp_path / "checkout"  # tmp_path holds no `shared`: ../shared is absent for the copy
    shutil.copytree(REPO_ROOT / "edugraph_pipeline_tests", copy / "edugraph_pipeline_tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", copy)
    (copy / "edugraph_pipeline_tests" / "test_shared_probes.py").write_text(PROBES, encoding="utf-8")
    absent = tmp_path / "shared"

    in_ci = _run_copy(copy, tmp_path / "ci.xml", ci=True)
    assert sorted(in_ci) == sorted([*PROBE_NAMES, "test_imagefolder_metadata_jsonl"])
    for name, (outcome, message) in in_ci.items():
        assert outcome in ("failure", "error"), (name, outcome, message)
        assert "EDUGRAPH_CI is set: CI must run this test" in message, (name, message)
        assert f"reference data {absent}/" in message, (name, message)  # the copy's own ../shared, named
    assert "real-label-sets" in in_ci["test_label_sets"][1]

    local = _run_copy(copy, tmp_path / "local.xml", ci=False)
    assert {name: outcome for name, (outcome, _) in local.items()} == dict.fromkeys(in_ci, "skipped")

    skipped = [sys.executable, str(REPO_ROOT / ".ci" / "skipped.py")]
    listed = subprocess.run([*skipped, str(tmp_path / "local.xml")], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert listed.stdout.splitlines()[0] == "skipped tests: 5"
    assert all(f"::{name}: " in listed.stdout for name in in_ci)
    assert "error: 5 test(s) skipped" in listed.stderr
    # A report with failures and no skip is not this script's business (pytest's status fails CI); a missing
    # report is: pytest died before it could write one.
    assert subprocess.run([*skipped, str(tmp_path / "ci.xml")], capture_output=True, timeout=60).returncode == 0
    missing = subprocess.run([*skipped, str(tmp_path / "ci.xml"), str(tmp_path / "slow.xml")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "slow.xml: no readable JUnit XML report" in missing.stderr
