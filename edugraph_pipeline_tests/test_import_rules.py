"""The layout rules, read from the source: Dagster code lives under `defs/`, the domain packages import no Dagster
(the training step only `dagster_pipes`), nothing imports Dagster's private modules, and no two packages import
each other, and the product imports nothing of the tests."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edugraph_pipeline"
DOMAIN_PACKAGES = ("ontology", "knowledge", "worksheets", "training", "evaluation", "inference", "publishing", "gguf")
ALLOWED_IN_DOMAIN = {"dagster_pipes"}  # the training step reports through Pipes and imports nothing else of Dagster


def imports_of(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (functions included: lazy imports count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def is_dagster(module: str) -> bool:
    top = module.split(".")[0]
    return top == "dagster" or top.startswith("dagster_")


def test_domain_packages_import_no_dagster():
    offending = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for package in DOMAIN_PACKAGES
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for module in imports_of(path)
        if is_dagster(module) and module.split(".")[0] not in ALLOWED_IN_DOMAIN
    ]
    assert not offending, "\n".join(offending)


def test_nothing_imports_private_dagster_modules():
    roots = [PACKAGE, PACKAGE.parent / "edugraph_pipeline_tests", PACKAGE.parent / "bench"]
    offending = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        for module in imports_of(path)
        if is_dagster(module) and any(part.startswith("_") for part in module.split(".")[1:])
    ]
    assert not offending, "\n".join(offending)


def test_dagster_objects_live_under_defs():
    """Outside `defs/` only the code location's loader and the CLI's instance helpers may import Dagster."""
    allowed = {"definitions.py", "cli.py", "lineage.py"}
    offending = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "defs" not in path.relative_to(PACKAGE).parts
        and path.relative_to(PACKAGE).as_posix() not in allowed
        and any(is_dagster(module) and module.split(".")[0] not in ALLOWED_IN_DOMAIN for module in imports_of(path))
    ]
    assert not offending, "\n".join(offending)


def test_no_two_packages_import_each_other():
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue  # top-level modules are not packages
        package = parts[0]
        for module in imports_of(path):
            pieces = module.split(".")
            if pieces[0] == "edugraph_pipeline" and len(pieces) > 1 and (PACKAGE / pieces[1]).is_dir():
                if pieces[1] != package:
                    graph[package].add(pieces[1])
    cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and a in graph.get(b, set()))
    assert not cycles, cycles


def test_the_product_imports_nothing_of_the_tests():
    """The test kit (`edugraph_pipeline_tests.kit`) serves the tests and `bench/`; the product never imports it."""
    offending = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module in imports_of(path)
        if module.split(".")[0] == "edugraph_pipeline_tests"
    ]
    assert not offending, "\n".join(offending)
