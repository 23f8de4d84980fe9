"""Classification latency: llama.cpp (GGUF, Q4_K_M by default) vs transformers, same model, images and settings.

    python bench/gguf_latency.py [--model FOLDER] [--quant Q4_K_M] [--images 8] [--repeats 2] [--max-new-tokens 48]

Needs the llama.cpp build (scripts/build-llama-cpp.sh). Without --model the seeded tiny Qwen3-VL is built into a
temporary folder (untrained: answers are garbage, kept short by the vocabulary mask and the JSON-end stop) with the
newest ontology of ../shared/ontology-releases bound. Both paths classify one image at a time (the GGUF backend has
no batching), greedy, with the same prompt, mask, stop and image token bounds; the transformers path is also timed
batched. Threads: torch's default (or --torch-threads) and llama.cpp's --threads (default: EDUGRAPH_GGUF_THREADS
or half the logical CPUs; on a busy 2-core machine 2 llama.cpp threads are ~100x slower than 1), printed. Prints JSON: per-image
latency of each path (median, p90), load times, file sizes, how many raw answers agree, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))


def timed(classifier, images, repeats: int, batch_size: int = 1) -> list[float]:
    samples = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            classifier.classify([image], batch_size=batch_size)
            samples.append(time.perf_counter() - start)
    return samples


def stats(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "mean_s": round(statistics.mean(ordered), 4),
        "n": len(ordered),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="merged model folder (default: build the tiny model)")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args(argv)

    import torch
    from classify_latency import bound_ontology
    from transformers.utils import logging as hf_logging

    from edugraph_pipeline.gguf.convert import export_gguf
    from edugraph_pipeline.inference.classifier import Classifier
    from edugraph_pipeline.llama_cpp_build import LlamaCpp
    from edugraph_pipeline.training.tiny_model import build_tiny_model, generate_picture

    llama = LlamaCpp.locate()
    if not llama.available():
        print(f"llama.cpp build absent in {llama.root}: run scripts/build-llama-cpp.sh", file=sys.stderr)
        return 2
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    llama_threads = args.threads or llama.thread_count  # EDUGRAPH_GGUF_THREADS, else half the CPUs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            folder = Path(args.model)
        else:
            folder = build_tiny_model(tmp / "merged" / "model")
            bound_ontology().save(folder / "ontology.json")
        start = time.perf_counter()
        manifest = export_gguf(folder, tmp / "gguf", args.quant, llama=llama)
        export_s = time.perf_counter() - start

        rng = random.Random(0)
        images = [generate_picture(rng, 224)[0] for _ in range(args.images)]

        start = time.perf_counter()
        hf = Classifier.from_folder(folder, device="cpu", max_new_tokens=args.max_new_tokens)
        hf_load = time.perf_counter() - start
        hf.classify(images[:1])  # warm-up
        hf_samples = timed(hf, images, args.repeats)
        start = time.perf_counter()
        hf_raw = [r.raw for r in hf.classify(images, batch_size=len(images))]
        hf_batched = (time.perf_counter() - start) / len(images)

        start = time.perf_counter()
        gguf = Classifier.from_folder(
            tmp / "gguf", backend="gguf", llama=llama, max_new_tokens=args.max_new_tokens, n_threads=llama_threads
        )
        gguf_load = time.perf_counter() - start
        gguf.classify(images[:1])  # warm-up
        gguf_samples = timed(gguf, images, args.repeats)
        gguf_raw = [r.raw for r in gguf.classify(images)]
        gguf.close()

        hf_stats, gguf_stats = stats(hf_samples), stats(gguf_samples)
        result = {
            "model": str(args.model or "tiny (built)"),
            "quant": manifest["quantization"]["requested"],
            "text_model_mb": round(manifest["text_model"]["size_bytes"] / 2**20, 2),
            "mmproj_mb": round(manifest["mmproj"]["size_bytes"] / 2**20, 2),
            "safetensors_f16_equiv_mb": round(manifest["f16_size_bytes"] / 2**20, 2),
            "fallback_tensors": len(manifest["quantization"]["fallbacks"]),
            "export_s": round(export_s, 2),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "llama_threads": llama_threads,
            "load_average": os.getloadavg()[0],
            "images": args.images,
            "max_new_tokens": args.max_new_tokens,
            "transformers": {**hf_stats, "load_s": round(hf_load, 3), "batched_per_image_s": round(hf_batched, 4)},
            "gguf": {**gguf_stats, "load_s": round(gguf_load, 3)},
            "median_ratio_transformers_over_gguf": round(hf_stats["median_s"] / gguf_stats["median_s"], 3),
            "same_raw_answers": sum(a == b for a, b in zip(hf_raw, gguf_raw)),
            "raw_chars_mean": {"transformers": statistics.mean(map(len, hf_raw)),
                               "gguf": statistics.mean(map(len, gguf_raw))},
            "raw_examples": {"transformers": hf_raw[:2], "gguf": gguf_raw[:2]},
        }
    print(f"transformers: median {hf_stats['median_s']:.3f} s/image (p90 {hf_stats['p90_s']:.3f})")
    print(f"gguf {result['quant']}: median {gguf_stats['median_s']:.3f} s/image (p90 {gguf_stats['p90_s']:.3f})")
    print(f"ratio transformers/gguf: {result['median_ratio_transformers_over_gguf']:.2f}x")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
