"""Fixtures for the worksheet tests: real ontology releases and real label sets from ../shared."""

import pytest

from edugraph_pipeline_tests.worksheets.worksheet_helpers import load_release, read_label_sets


@pytest.fixture(scope="session")
def ontology():
    return load_release("v0.21.0")


@pytest.fixture(scope="session")
def real_tag_sets():
    return read_label_sets()
