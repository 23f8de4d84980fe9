"""Classification latency on the tiny Qwen3-VL: one image at a time vs. batches, measured in the same run.

    python bench/classify_latency.py [--model FOLDER] [--images 16] [--batch-size 8] [--max-new-tokens 64]

Without --model the seeded tiny model is built into a temporary folder (untrained: its answers are garbage, which
the vocabulary mask and the JSON-end stop keep short; greedy output is the same batched or not, so both modes
generate the same tokens). The bound ontology is the newest release in ../shared/ontology-releases when present,
otherwise a three-concept stand-in.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def bound_ontology():
    from edugraph_pipeline.ontology.model import Concept, Ontology

    releases = REPO_ROOT.parent / "shared" / "ontology-releases"
    if releases.is_dir():
        from edugraph_pipeline.ontology.parsing import parse_release
        from edugraph_pipeline.releases import SEMVER_TAG, semver_key

        tags = sorted((p.name for p in releases.iterdir() if SEMVER_TAG.match(p.name)), key=semver_key)
        if tags:
            folder = releases / tags[-1]
            files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "RELEASED_AT"}
            return parse_release(files, version=tags[-1], commit="shared")
    concepts = {
        name: Concept(name=name, iri=f"http://edugraph.io/edu#{name}", dimension=dim)
        for name, dim in (("Addition", "Area"), ("NumbersSmaller10", "Scope"), ("ProcedureExecution", "Ability"))
    }
    return Ontology(version="stand-in", commit="-", concepts=concepts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="merged model folder (default: build the tiny model)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="single-image latency samples per image set")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    from edugraph_pipeline.inference.classifier import Classifier
    from edugraph_pipeline.training.tiny_model import build_tiny_model, generate_picture

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ontology = bound_ontology()
        if args.model:
            folder = Path(args.model)
            ontology_path = None if (folder / "ontology.json").exists() else Path(tmp) / "ontology.json"
        else:
            folder = build_tiny_model(Path(tmp) / "tiny")
            ontology_path = Path(tmp) / "ontology.json"
        if ontology_path is not None:
            ontology.save(ontology_path)
        classifier = Classifier.from_folder(
            folder, ontology_path, device=args.device, max_new_tokens=args.max_new_tokens
        )
        rng = random.Random(0)
        images = [generate_picture(rng, 224)[0] for _ in range(args.images)]
        classifier.classify(images[:2], batch_size=2)  # warm-up

        single = []
        for _ in range(args.repeats):
            for image in images[: max(1, args.images // 4)]:
                start = time.perf_counter()
                classifier.classify([image], batch_size=1)
                single.append(time.perf_counter() - start)

        start = time.perf_counter()
        one_by_one = classifier.classify(images, batch_size=1)
        sequential_s = time.perf_counter() - start
        start = time.perf_counter()
        batched = classifier.classify(images, batch_size=args.batch_size)
        batched_s = time.perf_counter() - start
        same = [a.raw for a in one_by_one] == [b.raw for b in batched]
        backend = classifier.backend
        tokens = [len(backend.tokenizer.encode(r.raw, add_special_tokens=False)) for r in batched]
        result = {
            "device": str(backend.model.device),
            "torch_threads": torch.get_num_threads(),
            "ontology": ontology.version,
            "vocabulary_tokens": len(backend.vocabulary.ids) if backend.vocabulary else None,
            "max_new_tokens": args.max_new_tokens,
            "images": args.images,
            "answer_tokens_mean": statistics.mean(tokens),
            "single_latency_s_median": statistics.median(single),
            "single_latency_s_p90": sorted(single)[int(0.9 * (len(single) - 1))],
            "batch_size_1_images_per_s": args.images / sequential_s,
            f"batch_size_{args.batch_size}_images_per_s": args.images / batched_s,
            "batched_speedup": sequential_s / batched_s,
            "same_answers_batched_and_single": same,
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
