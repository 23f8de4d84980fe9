"""Helpers shared by the worksheet tests (a uniquely named module, so no other test folder can shadow it)."""

import io
import json
from pathlib import Path

from PIL import Image

from edugraph_pipeline.ontology.parsing import parse_release
from edugraph_pipeline_tests.conftest import require_shared
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR, SHARED_RELEASES, shared_release_files

LABEL_SETS = SHARED_DIR / "real-label-sets" / "edugraph-exercises-validated-labels.jsonl"


def load_release(tag: str):
    require_shared(SHARED_RELEASES / tag)  # the worksheet tests need ../shared: skip, or fail under EDUGRAPH_CI=1
    return parse_release(shared_release_files(tag), version=tag, commit="0" * 40)


def png_bytes(size=(64, 48), colour=(200, 30, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def read_label_sets() -> list[dict]:
    require_shared(LABEL_SETS)
    rows = [json.loads(line) for line in LABEL_SETS.read_text(encoding="utf-8").splitlines()]
    # One row per problem: the file holds question and solution rows of many problems.
    by_problem = {}
    for row in rows:
        if row["pass"]:
            by_problem.setdefault(row["file_name"].replace("_mode-Q", "_mode-S"), row)
    return list(by_problem.values())


def write_imagine_release(root: Path, tag_sets: list[list[str]], ontology, namespace: str, module="addition"):
    """An imagine-content release: `<module>/meta.json` with per-dimension IRIs and question/answer images."""
    folder = root / module
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, tags in enumerate(tag_sets):
        labels = {"Area": [], "Scope": [], "Ability": []}
        for tag in tags:
            labels[ontology.concepts[tag].dimension].append(namespace + tag)
        (folder / f"q{index}.png").write_bytes(png_bytes(colour=(index, 10, 10)))
        (folder / f"a{index}.png").write_bytes(png_bytes(colour=(index, 200, 10)))
        entries.append({
            "questionImage": f"q{index}.png", "answerImage": f"a{index}.png", "questionDoc": f"q{index}.pdf",
            "answerDoc": f"a{index}.pdf", "source": "test", "created": "2024-01-01", "contentHash": f"h{index}",
            "versionHash": "v1", "labels": labels,
        })
    (folder / "meta.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return entries


def write_imagefolder_release(root: Path, label_rows: list[dict], namespace: str = "") -> dict[str, list[dict]]:
    """An ImageFolder release: `train/` and `validation/` with metadata.jsonl; each real row gives a question
    (`mode-Q`) and a solution (`mode-S`) image."""
    written = {"train": [], "validation": []}
    for index, row in enumerate(label_rows):
        split = "validation" if index % 4 == 3 else "train"
        solution_name = row["file_name"].replace("_mode-Q", "_mode-S")
        for solution, name in ((False, solution_name.replace("_mode-S", "_mode-Q")), (True, solution_name)):
            path = root / split / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_bytes(colour=(index % 256, 90 if solution else 30, index // 256)))
            written[split].append({"file_name": name, "tags": [namespace + t for t in row["tags"]],
                                   "solution": solution})
    for split, rows in written.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return written
