"""Time knowledge-infusion (KI) generation: v0.21.0 alone, and all 52 releases.

    python bench/knowledge_generation.py [--repeat 3]

Prints parse and generation seconds, rows and rows/s, and the ratio against upstream's approach measured in
the same run (rdflib parse of the release + definition-only generation, as upstream's script did).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rdflib  # noqa: E402
from rdflib import RDF, RDFS  # noqa: E402

from edugraph_pipeline.knowledge.qa import generate_pairs  # noqa: E402
from edugraph_pipeline.ontology.parsing import parse_release  # noqa: E402
from edugraph_pipeline_tests.kit.remotes import SHARED_RELEASES, release_tags, shared_release_files  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not SHARED_RELEASES.is_dir():
        sys.exit(f"{SHARED_RELEASES} is absent: the benchmark needs the 52 reference releases")
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
