import pytest

from edugraph_pipeline_tests.evaluation.helpers import small_ontology


@pytest.fixture(scope="session")
def ontology():
    return small_ontology()
