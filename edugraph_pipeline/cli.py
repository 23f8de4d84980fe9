"""`edugraph` command line (also `python -m edugraph_pipeline`)."""

from __future__ import annotations

import argparse
import sys

from edugraph_pipeline import settings


def _releases(args: argparse.Namespace) -> int:
    import dagster as dg

    from edugraph_pipeline.defs.ontology.resources import OntologyRepository
    from edugraph_pipeline.defs.partitions import sync_release_partitions
    from edugraph_pipeline.releases import ReleaseSourceError

    repository = OntologyRepository.from_settings()
    try:
        tags = repository.list_releases()
    except ReleaseSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.action == "list":
        for tag in tags:
            print(f"{tag.name}\t{tag.commit}")
        return 0
    new = sync_release_partitions(dg.DagsterInstance.get(), [tag.name for tag in tags])
    print(f"{len(new)} new ontology release partition(s) added, {len(tags)} known: {', '.join(new) or '-'}")
    return 0


def _run(_args: argparse.Namespace) -> int:
    from edugraph_pipeline.definitions import defs
    from edugraph_pipeline.defs.pipeline.run_command import run_pipeline

    return run_pipeline(defs, write=lambda line: print(line, flush=True))


DEFAULT_LINEAGE_ASSETS = ("hf_publication", "merged_model")


def _lineage(args: argparse.Namespace) -> int:
    import json

    import dagster as dg

    from edugraph_pipeline.lineage import lineage, render

    instance = dg.DagsterInstance.get()
    # Without an asset: the latest publication, else (nothing published: EDUGRAPH_HF_REPO unset) the merged model.
    candidates = [args.asset] if args.asset else list(DEFAULT_LINEAGE_ASSETS)
    node = None
    for asset in candidates:
        try:
            node = lineage(instance, asset, args.partition)
            break
        except LookupError as error:
            print(f"{'error' if asset == candidates[-1] else 'note'}: {error}", file=sys.stderr)
    if node is None:
        return 2
    print(json.dumps(node.to_json(), indent=2) if args.json else render(node))
    return 0


def _settings(_args: argparse.Namespace) -> int:
    print(settings.describe_settings())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edugraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    whole_run = commands.add_parser(
        "run",
        help="build the whole graph for the newest ontology release in the Dagster instance ($DAGSTER_HOME, default: "
        "the current directory) and print the artifacts, the evaluation, an example, the lineage and how to open the UI",
    )
    whole_run.set_defaults(run=_run)

    releases = commands.add_parser("releases", help="ontology release tags of EDUGRAPH_ONTOLOGY_REPO")
    releases.add_argument(
        "action",
        choices=["list", "sync"],
        help="list: print tags and commits; sync: add every tag as a partition of the Dagster instance ($DAGSTER_HOME)",
    )
    releases.set_defaults(run=_releases)

    from edugraph_pipeline.inference.classify_command import add_arguments as add_classify_arguments
    from edugraph_pipeline.inference.classify_command import run as run_classify

    classify = commands.add_parser("classify", help="label worksheet images with the latest merged model")
    add_classify_arguments(classify)
    classify.set_defaults(run=run_classify)

    from edugraph_pipeline.serving.serve_command import add_arguments as add_serve_arguments
    from edugraph_pipeline.serving.serve_command import run as run_serve

    serve = commands.add_parser("serve", help="serve the classifier over HTTP (POST /v1/classify, /metrics, /docs)")
    add_serve_arguments(serve)
    serve.set_defaults(run=run_serve)

    show_lineage = commands.add_parser(
        "lineage", help="the chain of materializations behind an artifact, back to its releases"
    )
    show_lineage.add_argument(
        "asset", nargs="?", help="asset key (default: hf_publication, or merged_model when nothing was published)"
    )
    show_lineage.add_argument("--partition", help="partition (ontology release tag); default: the latest materialization")
    show_lineage.add_argument("--json", action="store_true", help="machine-readable output")
    show_lineage.set_defaults(run=_lineage)

    show_settings = commands.add_parser("settings", help="print the configuration table (Markdown)")
    show_settings.set_defaults(run=_settings)

    gcp = commands.add_parser("gcp", help="Google Cloud training (gcp and vertex launchers)")
    gcp.add_argument("action", choices=["check"], help="check: what the project lacks for training (prints fixes)")
    gcp.set_defaults(run=_gcp)
    return parser


def _gcp(_args: argparse.Namespace) -> int:
    from edugraph_pipeline.cloud.preflight import main as check

    return check()


def main(argv: list[str] | None = None) -> int:
    settings.load_dotenv()
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
