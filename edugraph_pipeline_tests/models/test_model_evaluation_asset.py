"""`model_evaluation` run by Dagster on a store holding a merged model and a worksheet dataset of 42 problems: the
table comparable to upstream's for the model and both baselines in its metadata, the selection and final cohorts,
every example's raw output, parsed and final labels in evaluation.json, and the HTML error report beside it."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import datasets
import pytest
from PIL import Image

from edugraph_pipeline.charts import INLINE_MARKDOWN_LIMIT
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline_tests.conftest import PIPELINE_ASSETS
from edugraph_pipeline_tests.evaluation.helpers import answer, small_ontology

TAG = "v9.9.9"
A = answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])
B = answer(["Subtraction"], ["NumbersSmaller100"], ["ErrorDetection"])
PROBLEMS = 42  # enough for a selection cohort (cohorts.MIN_PROBLEMS); one view of each, to keep it short


def _split(count: int, offset: int) -> dict:
    rows = {"image": [], "labels": [], "problem_id": [], "view": [], "kind": [], "source": [], "image_sha256": []}
    for index in range(count):
        problem, view = index, index % 2
        grey = (offset + index * 5) % 256
        rows["image"].append(Image.new("RGB", (40 + view * 8, 30), (grey, grey, 255 - grey)))
        rows["labels"].append(A if problem % 3 else B)
        rows["problem_id"].append(f"p{offset + problem}")
        rows["view"].append("solution" if view else "question")
        rows["kind"].append("addition" if problem % 3 else "subtraction")
        rows["source"].append(f"test:{offset + index}.png")
        rows["image_sha256"].append(f"{offset + index:064x}")
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from edugraph_pipeline.training.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("evaluation") / "data"
    store = ArtifactStore(root)
    ontology = small_ontology()
    model = build_tiny_model(tmp_path_factory.mktemp("model") / "model")
    ontology.save(model / "ontology.json")
    with store.publish("merged_model", None, {"ontology_version": TAG}) as staging:
        shutil.copytree(model, staging / "model")
    with store.publish("trained_adapter", None, {"ontology_version": TAG, "profile": "tiny"}):
        pass
    features = datasets.Features({"image": datasets.Image(), **{c: datasets.Value("string") for c in (
        "labels", "problem_id", "view", "kind", "source", "image_sha256")}})
    dataset = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(_split(40, 1000), features=features),
        "validation": datasets.Dataset.from_dict(_split(PROBLEMS, 0), features=features),
    })
    lineage = {"ontology_version": TAG, "content_version": "abc123", "content_revision": "v9.9.9-01",
               "content_built_for_ontology_version": TAG, "content_label_field": "labels"}
    with store.publish("worksheet_dataset", TAG, lineage) as staging:
        dataset.save_to_disk(str(staging / "dataset"))
    return store


def test_model_evaluation_shows_the_comparable_table_and_writes_the_error_report(store):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("ontology_releases", [TAG])
    config = {"ops": {"model_evaluation": {"config": {"gate_profile": "tiny", "batch_size": 8}}}}
    from edugraph_pipeline.defs.ontology.resources import OntologyRepository
    from edugraph_pipeline.defs.resources import HubPublisher
    from edugraph_pipeline.defs.training.launchers import LocalLauncher
    from edugraph_pipeline.defs.worksheets.resources import ContentSource

    resources = {  # only artifact_store is used; the others are what the other assets of the code location need
        "artifact_store": ArtifactStoreResource(data_dir=str(store.root)),
        "ontology_repository": OntologyRepository(remote="/nonexistent", cache_dir=str(store.root / ".cache")),
        "content_source": ContentSource(), "training_launcher": LocalLauncher(), "hub": HubPublisher(),
    }
    result = dg.materialize(PIPELINE_ASSETS, selection=["model_evaluation"], instance=instance, run_config=config,
                            resources=resources, raise_on_error=False)
    [gate] = result.get_asset_check_evaluations()  # an untrained model: its gate fails, its evaluation is recorded
    assert gate.check_name == "evaluation_gate" and not gate.passed
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("model_evaluation")[0].metadata.items()}
    record = json.loads((store.asset_dir("model_evaluation") / "evaluation.json").read_text())

    # Cohorts: a quarter or so of the problems choose checkpoints; the gate and the legacy report score the rest.
    selection, final = record["cohorts"]["selection"], record["cohorts"]["final"]
    assert selection["rows"] + final["rows"] == PROBLEMS and 0 < selection["rows"] < final["rows"]
    assert not set(selection["problems"]) & set(final["problems"])
    assert metadata["n"] == record["report"]["n"] == final["rows"]

    # The table comparable to upstream's: the model and both baselines, in place on the page.
    table = metadata["upstream_scores"]
    assert table.splitlines()[0] == f"| final cohort (n={final['rows']}) | model | most freq. | 1-NN |"
    assert "| exact set (valid only) |" in table and "| invalid outputs |" in table and len(table) < INLINE_MARKDOWN_LIMIT
    assert metadata["upstream_scores_selection"].startswith(f"| selection cohort (n={selection['rows']}) |")
    assert set(record["comparable"]) == {"final", "selection", "validation"}
    assert set(record["comparable"]["final"]) == {"model", "most_frequent", "nearest_neighbour"}
    frequent = record["comparable"]["final"]["most_frequent"]["overall"]
    # The most frequent train answer is A (2 problems of 3): right on the final rows whose gold is A, all valid.
    gold_a = sum(1 for e in record["examples"] if e["cohort"] == "final" and e["gold"] == json.loads(A))
    assert frequent["exact_set_match"] == pytest.approx(gold_a / final["rows"]) and frequent["invalid_output_rate"] == 0
    assert metadata["exact_set_match"] == round(record["comparable"]["final"]["model"]["overall"]["exact_set_match"], 3)

    # Every example: raw output, the object parsed from it (or null), the final labels, the verdict.
    assert len(record["examples"]) == PROBLEMS
    first = record["examples"][0]
    assert {"row", "problem_id", "view", "cohort", "gold", "raw", "parsed", "final", "valid", "exact", "f1",
            "baselines"} <= set(first)
    assert set(first["final"]) in ({"Area", "Scope", "Ability"}, {"Error"})

    # Both versions of the content are on the page and in the record.
    assert (metadata["ontology_version"], metadata["content_revision"]) == (TAG, "v9.9.9-01")
    assert record["content_built_for_ontology_version"] == TAG

    # The error report: beside evaluation.json, linked from the metadata, one card per wrong example.
    page_path = store.asset_dir("model_evaluation") / "error_report.html"
    assert metadata["error_report"] == str(page_path) and metadata["error_report_link"].startswith("file://")
    page = page_path.read_text(encoding="utf-8")
    wrong = sum(not e["exact"] for e in record["examples"])
    assert metadata["wrong_examples"] == wrong > 0
    assert page.count('<div class="card">') == wrong and page.count("data:image/png;base64,") == wrong
    assert "v9.9.9-01" in page
