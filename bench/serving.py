"""`edugraph serve` under load: requests/s and p50/p95 latency at concurrency 1, 4 and 16, batched vs one request at
a time (max batch 1, no window), for the transformers and the GGUF backend, measured in the same run.

    nice -n 10 python bench/serving.py [--requests 16] [--concurrency 1,4,16] [--max-batch 8] [--window-ms 10]
                                       [--max-new-tokens 24] [--repeats 2] [--backends transformers,gguf]

The real service (uvicorn in this process, on a free local port) is called over HTTP with httpx, one image per
request, after a warm-up; both modes run side by side and are measured alternately (see `measure`). The model is the seeded tiny Qwen3-VL (untrained: short garbage answers, kept
valid by constrained decoding) with the newest ../shared ontology bound (see classify_latency.py); the GGUF backend
needs the llama.cpp build (scripts/build-llama-cpp.sh) and is reported as skipped without it. Peak memory is this
process's peak resident set (service + client) after each backend. Prints a table and a JSON record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def load(url: str, bodies: list[bytes], concurrency: int, requests: int) -> dict:
    import httpx

    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(index: int) -> None:
            async with gate:
                started = time.perf_counter()
                body = bodies[index % len(bodies)]
                response = await client.post("/v1/classify", files={"file": (f"{index}.png", body, "image/png")})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - started
    return {"requests": requests, "requests_per_s": round(requests / wall, 3), "latencies": latencies}


def batch_totals(url: str) -> tuple[float, float]:
    """(images, batches) so far, from the service's own /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    values = {s.name: s.value for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
              for s in f.samples}
    return values["edugraph_batch_images_sum"], values["edugraph_batch_images_count"]


def measure(loader, bodies, levels, requests, modes, repeats) -> dict:
    """Both modes served side by side and measured alternately, level by level, so that load from elsewhere on
    the machine falls on both alike; per level: the median rate of the repeats, p50/p95 over all requests."""
    from contextlib import ExitStack

    import httpx

    from edugraph_pipeline.serving.app import create_app
    from edugraph_pipeline_tests.kit.serving import running, wait_ready

    with ExitStack() as stack:
        urls = {}
        for mode, batching in modes.items():
            # One after the other: llama.cpp's loader redirects the process's stdout/stderr while it runs, and
            # two overlapping redirections would leave them redirected.
            urls[mode] = url = stack.enter_context(running(create_app(loader, batching=batching)))
            with httpx.Client(base_url=url, timeout=600) as client:
                wait_ready(client, timeout=600)
            asyncio.run(load(url, bodies, 2, 2))  # warm-up
        out: dict = {mode: {} for mode in modes}
        for level in levels:
            runs: dict = {mode: [] for mode in modes}
            totals = {mode: batch_totals(url) for mode, url in urls.items()}
            for _ in range(repeats):
                for mode, url in urls.items():
                    runs[mode].append(asyncio.run(load(url, bodies, level, max(requests, 2 * level))))
            for mode, url in urls.items():
                images, batches = (now - then for now, then in zip(batch_totals(url), totals[mode]))
                latencies = [x for run in runs[mode] for x in run.pop("latencies")]
                out[mode][level] = {
                    "requests": sum(run["requests"] for run in runs[mode]),
                    "requests_per_s": statistics.median(run["requests_per_s"] for run in runs[mode]),
                    "p50_s": round(statistics.median(latencies), 4),
                    "p95_s": round(percentile(latencies, 0.95), 4),
                    "mean_batch_images": round(images / max(1.0, batches), 2),
                }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level (at least 2x it)")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--window-ms", type=float, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--backends", default="transformers,gguf")
    parser.add_argument("--images", type=int, default=8, help="distinct pictures the requests cycle through")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds per level and mode")
    args = parser.parse_args(argv)

    import torch
    from classify_latency import bound_ontology
    from transformers.utils import logging as hf_logging

    from edugraph_pipeline.llama_cpp_build import LlamaCpp
    from edugraph_pipeline.serving.batching import BatchSettings
    from edugraph_pipeline.serving.model import open_model
    from edugraph_pipeline.training.tiny_model import build_tiny_model, generate_picture
    from edugraph_pipeline_tests.kit.serving import png_bytes

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    levels = [int(level) for level in args.concurrency.split(",")]
    modes = {
        "batched": BatchSettings(args.max_batch, args.window_ms / 1000),
        "one_at_a_time": BatchSettings(1, 0.0),
    }
    rng = random.Random(0)
    bodies = [png_bytes(generate_picture(rng, 224)[0]) for _ in range(args.images)]
    record: dict = {
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
        "max_batch": args.max_batch, "window_ms": args.window_ms, "max_new_tokens": args.max_new_tokens,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        merged = build_tiny_model(Path(tmp) / "merged" / "model")
        bound_ontology().save(merged / "ontology.json")
        record["ontology_version"] = json.loads((merged / "ontology.json").read_text())["version"]
        for backend in args.backends.split(","):
            folder = merged
            if backend == "gguf":
                llama = LlamaCpp.locate()
                if not llama.available():
                    record["backends"][backend] = {"skipped": f"llama.cpp build absent in {llama.root}"}
                    continue
                from edugraph_pipeline.gguf.convert import export_gguf

                folder = Path(tmp) / "gguf"
                export_gguf(merged, folder, "Q4_K_M", llama=llama)

            def loader(backend=backend, folder=folder):
                return open_model(backend, folder, device="cpu", max_new_tokens=args.max_new_tokens)

            results = measure(loader, bodies, levels, args.requests, modes, args.repeats)
            for level in levels:
                results.setdefault("throughput_ratio", {})[level] = round(
                    results["batched"][level]["requests_per_s"] / results["one_at_a_time"][level]["requests_per_s"], 2
                )
            results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            record["backends"][backend] = results

    print(f"{'backend':<13}{'conc':>5}  {'batched req/s':>13} {'p50':>7} {'p95':>7}   "
          f"{'one-at-a-time req/s':>19} {'p50':>7} {'p95':>7}   ratio")
    for backend, results in record["backends"].items():
        if "skipped" in results:
            print(f"{backend:<13} skipped: {results['skipped']}")
            continue
        for level in levels:
            b, o = results["batched"][level], results["one_at_a_time"][level]
            print(f"{backend:<13}{level:>5}  {b['requests_per_s']:>13.2f} {b['p50_s']:>7.3f} {b['p95_s']:>7.3f}   "
                  f"{o['requests_per_s']:>19.2f} {o['p50_s']:>7.3f} {o['p95_s']:>7.3f}   "
                  f"{results['throughput_ratio'][level]:.2f}x")
        print(f"{backend:<13} peak RSS {results['peak_rss_mib']} MiB")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
