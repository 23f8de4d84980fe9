"""The layout rules, read from the source: imports point down only (a layer map, no import circle of any length,
top-level modules included); Dagster code lives under `defs/`, the domain packages import no Dagster (the training
step only `dagster_pipes`), nothing imports Dagster's private modules; only `settings.py` reads the environment; the
product imports nothing of the tests; and the pieces that once existed several times (the `gs://` parser, the GCS
client, redaction) exist once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edugraph_pipeline"
DOMAIN_PACKAGES = ("ontology", "knowledge", "worksheets", "training", "evaluation", "inference", "publishing", "gguf")
ALLOWED_IN_DOMAIN = {"dagster_pipes"}  # the training step reports through Pipes and imports nothing else of Dagster

# Every top-level module or package of the product, lowest layer first. A unit may import its own layer and the
# layers below, never one above; units of one layer may import each other as long as no circle forms.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "settings", "redaction", "commits", "prompts", "charts"),  # the root package (imports nothing); values
    ("ontology", "cloud", "releases", "llama_cpp_build"),   # the ontology model, Google Cloud, git releases, llama.cpp
    ("labels", "storage", "knowledge"),                     # label text, the artifact store, KI generation
    ("worksheets", "evaluation", "inference", "training", "publishing", "gguf"),  # the domain
    ("serving", "lineage"),                                 # the HTTP service; the materialization chain
    ("defs",),                                              # every Dagster object
    ("cli", "definitions", "__main__"),                      # entry points
)
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def imports_of(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (functions included: lazy imports count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            # `from package import module` imports that module too
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def product_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the product (a package is its `__init__`)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_dagster(module: str) -> bool:
    top = module.split(".")[0]
    return top == "dagster" or top.startswith("dagster_")


def test_every_unit_has_a_layer():
    units = {unit_of(name) for name in product_modules()}
    assert units - set(LAYER_OF) == set(), "add the new module or package to LAYERS"


def test_the_root_package_imports_nothing():
    assert import_graph()["edugraph_pipeline"] == set()


def test_imports_point_down_only():
    offending = sorted(
        f"{source} (layer {LAYER_OF[unit_of(source)]}) imports {target} (layer {LAYER_OF[unit_of(target)]})"
        for source, targets in import_graph().items()
        for target in targets
        if LAYER_OF[unit_of(target)] > LAYER_OF[unit_of(source)]
    )
    assert not offending, "\n".join(offending)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_circle_finder_finds_a_long_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_of_any_length():
    found = circles(import_graph())
    assert not found, "\n".join(" <-> ".join(component) for component in found)


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


def reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "putenv")
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
            alias.name in ("environ", "getenv", "environb") for alias in node.names
        ):
            return True
    return False


def test_only_settings_reads_the_environment():
    """`os.environ` / `os.getenv` appear in settings.py only: every other module gets its values from it."""
    readers = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if reads_environment(path)}
    assert readers == {"settings.py"}


def test_the_product_imports_nothing_of_the_tests():
    """The test kit (`edugraph_pipeline_tests.kit`) serves the tests and `bench/`; the product never imports it."""
    offending = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module in imports_of(path)
        if module.split(".")[0] == "edugraph_pipeline_tests"
    ]
    assert not offending, "\n".join(offending)


def defined_functions(pattern: str) -> list[str]:
    """`module:function` for every function of the product whose name matches `pattern`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef) and re.fullmatch(pattern, node.name):
                found.append(f"{path.relative_to(PACKAGE).as_posix()}:{node.name}")
    return found


def test_repeated_pieces_exist_once():
    """One `gs://` parser, one GCS client factory, one redaction helper (each was written two or three times)."""
    assert defined_functions(r"_?(parse_gs_url|parse_gcs_url|parse_gs_uri|_split_url|split_gs_url)") == [
        "cloud/gcs.py:parse_gs_url"
    ]
    assert defined_functions(r"_?(gcs_client|storage_client)") == []
    assert [name for name in defined_functions(r"_?(redact|scrub|redact_url|mask_secrets)")] == [
        "redaction.py:redact", "redaction.py:redact_url"
    ]


def test_every_module_states_its_concern():
    """Each module (package `__init__`s included) opens with a docstring saying what it is for."""
    missing = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not missing, "\n".join(missing)
