"""Time knowledge-infusion (KI) generation: v0.21.0 alone, and all 52 releases; or print the figures per release.

    python bench/knowledge_generation.py [--repeat 3]
    python bench/knowledge_generation.py --figures [--json OUT.json] [--code DIR]

Timing: parse and generation seconds, rows and rows/s, and the ratio against upstream's approach measured in the
same run (rdflib parse of the release + definition-only generation, as upstream's script did).

`--figures`: per release (the 52 old ones and `../shared/ontology-2026`) the concept counts, the reading, KI rows
in all and per kind, and where the code has them the eligible labels per dimension and the facts per relation.
`--code DIR` runs the same against another tree of the package (`git archive main edugraph_pipeline | tar -x -C
DIR`), so that two versions' figures can be compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "--code" in sys.argv:  # before the package is imported: the tree whose figures are wanted comes first
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--code") + 1]).resolve()))

import json  # noqa: E402

import rdflib  # noqa: E402
from rdflib import RDF, RDFS  # noqa: E402

from edugraph_pipeline.knowledge.qa import count_by_kind, generate_pairs  # noqa: E402
from edugraph_pipeline.ontology.parsing import parse_release  # noqa: E402
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR, SHARED_RELEASES, release_tags, shared_release_files  # noqa: E402

ONTOLOGY_2026 = SHARED_DIR / "ontology-2026"

EDU = rdflib.Namespace("http://edugraph.io/edu#")


def ours(files: dict[str, bytes], tag: str) -> tuple[float, float, int]:
    start = time.perf_counter()
    ontology = parse_release(files, version=tag, commit="bench")
    parsed = time.perf_counter()
    rows = len(generate_pairs(ontology))
    return parsed - start, time.perf_counter() - parsed, rows


def upstream_like(files: dict[str, bytes]) -> tuple[float, int]:
    """Parse all Turtle, then one definition -> label row per typed concept (upstream's only output on v0.6.0+)."""
    start = time.perf_counter()
    graph = rdflib.Graph()
    for name, data in files.items():
        if name.endswith(".ttl"):
            graph.parse(data=data, format="turtle")
    rows = 0
    for dimension in ("Area", "Scope", "Ability"):
        for subject in graph.subjects(RDF.type, EDU[dimension]):
            if graph.value(subject, RDFS.isDefinedBy) or graph.value(subject, RDFS.comment):
                rows += 1
    return time.perf_counter() - start, rows


def measure(tags: list[str], repeat: int) -> dict:
    releases = {tag: shared_release_files(tag) for tag in tags}
    totals = []
    for _ in range(repeat):
        parse = generate = upstream = 0.0
        rows = upstream_rows = 0
        for tag, files in releases.items():
            p, g, n = ours(files, tag)
            u, un = upstream_like(files)
            parse, generate, rows, upstream, upstream_rows = parse + p, generate + g, rows + n, upstream + u, upstream_rows + un
        totals.append((parse, generate, rows, upstream, upstream_rows))
    parse, generate, rows, upstream, upstream_rows = min(totals, key=lambda t: t[0] + t[1])
    return {
        "parse_s": parse,
        "generate_s": generate,
        "rows": rows,
        "upstream_s": upstream,
        "upstream_rows": upstream_rows,
        "spread_s": statistics.pstdev(t[0] + t[1] for t in totals),
    }


def figures(files: dict[str, bytes], tag: str) -> dict:
    ontology = parse_release(files, version=tag, commit="bench")
    pairs = generate_pairs(ontology)
    result = {
        "concepts": ontology.counts(),
        "reading": getattr(ontology, "reading", "partOf-hierarchy (code before issue 22)"),
        "rows": len(pairs),
        "rows_by_kind": {kind: count for kind, count in count_by_kind(pairs).items() if count},
    }
    if hasattr(ontology, "eligible_labels"):
        result["eligible"] = {dimension: len(ontology.eligible_labels(dimension)) for dimension in ontology.counts()}
        result["relations"] = ontology.relation_counts()
    return result


def print_figures(out: str | None) -> None:
    releases = {tag: shared_release_files(tag) for tag in release_tags()}
    if ONTOLOGY_2026.is_dir():  # not a tag; tagged v0.26.0 by the tests (edugraph_pipeline_tests/ontology_2026.py)
        releases["ontology-2026"] = {path.name: path.read_bytes() for path in sorted(ONTOLOGY_2026.glob("*.ttl"))}
    table = {tag: figures(files, tag) for tag, files in releases.items()}
    for tag, row in table.items():
        concepts = "/".join(str(count) for count in row["concepts"].values())
        extra = f" eligible {row['eligible']} relations {row['relations']}" if row.get("eligible") else ""
        print(f"{tag:>14} {concepts:>11} concepts, {row['rows']:>5} rows {row['rows_by_kind']} [{row['reading']}]{extra}")
    if out:
        Path(out).write_text(json.dumps(table, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--figures", action="store_true", help="print concept, row and relation figures per release")
    parser.add_argument("--json", help="with --figures: also write them to this file")
    parser.add_argument("--code", help="with --figures: the package tree to measure (default: this checkout)")
    args = parser.parse_args()
    if not SHARED_RELEASES.is_dir():
        sys.exit(f"{SHARED_RELEASES} is absent: the benchmark needs the 52 reference releases")
    if args.figures:
        print_figures(args.json)
        return
    for label, tags in (("v0.21.0", ["v0.21.0"]), ("all 52 releases", release_tags())):
        m = measure(tags, args.repeat)
        total = m["parse_s"] + m["generate_s"]
        print(
            f"{label:>16}: parse {m['parse_s']:.3f}s + generate {m['generate_s']:.3f}s = {total:.3f}s, "
            f"{m['rows']} rows ({m['rows'] / total:,.0f} rows/s); upstream-style {m['upstream_s']:.3f}s for "
            f"{m['upstream_rows']} rows; time ratio ours/upstream {total / m['upstream_s']:.2f}, "
            f"rows ratio {m['rows'] / m['upstream_rows']:.2f} (best of {args.repeat}, spread {m['spread_s']:.3f}s)"
        )


if __name__ == "__main__":
    main()
