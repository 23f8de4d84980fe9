"""`edugraph serve` under load, in two suites measured in the same run.

batching: requests/s and p50/p95 latency at concurrency 1, 4 and 16, batched vs one request at a time (max batch 1,
no window), for the transformers and the GGUF backend, through `POST /v1/classify`. The real service (uvicorn in
this process, on a free local port) is called over HTTP with httpx, one image per request, after a warm-up; both
modes run side by side and are measured alternately (see `measure`). Peak memory is this process's peak resident
set (service + client) after each backend.

chat: the same tiny GGUF and the same images behind three OpenAI-compatible servers, each its own process, called
through `POST /v1/chat/completions` the way upstream's app calls its deployment (a user message with a text part
and a JPEG data URL, quality 75; temperature 0, max_tokens, stream false, enable_thinking false): llama.cpp's stock
`llama-server` (jinja chat template, greedy, `--parallel` slots, its threads as the GGUF backend's),
`edugraph serve --gguf` and `edugraph serve --model` (transformers, CPU). Each at concurrency 1, 4 and 16, with the
closed-vocabulary v3 schema in `response_format` and without one: requests/s, p50/p95, mean completion tokens, and
the share of answers that are valid labels of the bound release (`contracts.answer_problems`: strict, and with
repeated or unsorted labels tolerated, which llama.cpp's schema grammar does not prevent). With the schema the
answers are checked as v3, without it as legacy (the model's trained contract and the service's default).

    nice -n 10 python bench/serving.py [--suite batching,chat] [--requests 16] [--concurrency 1,4,16]
        [--max-batch 8] [--window-ms 10] [--max-new-tokens 24] [--repeats 2] [--backends transformers,gguf]
        [--max-tokens 64] [--slots 4] [--servers llama-server,edugraph-gguf,edugraph-model]

The model is the seeded tiny Qwen3-VL (untrained: short garbage answers, kept valid by constrained decoding) with
the newest ../shared ontology bound (see classify_latency.py); the GGUF parts need the llama.cpp build with its
server (scripts/build-llama-cpp.sh) and are reported as skipped without it. Prints tables and a JSON record.
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
from collections.abc import Iterator
from contextlib import contextmanager
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


# ---- chat suite -------------------------------------------------------------------------------------------------


@contextmanager
def edugraph_serve(*args: str, timeout: float = 600) -> Iterator[str]:
    """`edugraph serve ARGS` as its own process on a free port, until the block ends; yields its base URL."""
    from edugraph_pipeline_tests.kit.processes import served

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "edugraph_pipeline", "serve", "--port", str(port), *args]

    with served(command, name="edugraph serve", ready_path="/readyz", timeout=timeout, stop_wait=60,
                poll=0.3) as url:
        yield url


def chat_body(image_url: str, max_tokens: int, schema: dict | None) -> dict:
    """What upstream's app sends (../shared/upstream/CONTRACTS-2026.md), the schema in response_format if given."""
    body = {
        "model": "edugraph", "temperature": 0, "max_tokens": max_tokens, "stream": False,
        "chat_template_kwargs": {"enable_thinking": False},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Classify this task image."},
            {"type": "image_url", "image_url": {"url": image_url}},
        ]}],
    }
    if schema is not None:
        body["response_format"] = {"type": "json_object", "schema": schema}
    return body


async def chat_load(url: str, bodies: list[dict], concurrency: int, requests: int, start: int) -> dict:
    import httpx

    latencies: list[float] = []
    answers: list[tuple[str, int]] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(index: int) -> None:
            async with gate:
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=bodies[(start + index) % len(bodies)])
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    return
                body = response.json()
                answers.append((body["choices"][0]["message"]["content"] or "",
                                int((body.get("usage") or {}).get("completion_tokens") or 0)))

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - started
    return {"requests_per_s": requests / wall, "latencies": latencies, "answers": answers, "failures": failures}


def chat_figures(run: dict, ontology, contract: str) -> dict:
    from edugraph_pipeline.inference.contracts import FORM_PROBLEMS, answer_problems

    problems = [answer_problems(text, ontology, contract) for text, _ in run["answers"]]
    total = len(run["answers"]) + len(run["failures"])
    kinds = {}
    for found in problems:
        for kind, _ in found:
            kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "requests": total,
        "requests_per_s": round(run["requests_per_s"], 3),
        "p50_s": round(statistics.median(run["latencies"]), 4),
        "p95_s": round(percentile(run["latencies"], 0.95), 4),
        "valid_share": round(sum(not found for found in problems) / max(1, total), 3),
        "labels_valid_share": round(
            sum(all(kind in FORM_PROBLEMS for kind, _ in found) for found in problems) / max(1, total), 3),
        "problems": kinds,
        "failed": len(run["failures"]),
        "mean_completion_tokens": round(statistics.mean(tokens for _, tokens in run["answers"]), 1)
        if run["answers"] else None,
    }


def chat_suite(args, merged: Path, gguf: Path | None, ontology, levels: list[int]) -> dict:
    import base64
    import io

    from edugraph_pipeline.inference.contracts import closed_schema
    from edugraph_pipeline.llama_cpp_build import LlamaCpp
    from edugraph_pipeline.training.tiny_model import generate_picture
    from edugraph_pipeline_tests.kit.llama_server import llama_server

    rng = random.Random(1)
    urls = []
    for _ in range(args.chat_images):
        buffer = io.BytesIO()
        generate_picture(rng, 224)[0].convert("RGB").save(buffer, format="JPEG", quality=75)
        urls.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    schema = closed_schema(ontology, "v3")
    modes = {"with_schema": ([chat_body(u, args.max_tokens, schema) for u in urls], "v3"),
             "without_schema": ([chat_body(u, args.max_tokens, None) for u in urls], "legacy")}
    llama = LlamaCpp.locate()
    threads = llama.thread_count  # what the GGUF backend of edugraph serve runs with
    serve_limits = ["--max-new-tokens", str(args.max_new_tokens), "--max-batch", str(args.max_batch),
                    "--batch-window-ms", str(args.window_ms)]
    servers = {
        "llama-server": lambda: llama_server(gguf, llama, threads=threads, parallel=args.slots,
                                             max_new_tokens=args.max_tokens),
        "edugraph-gguf": lambda: edugraph_serve("--gguf", str(gguf), *serve_limits),
        "edugraph-model": lambda: edugraph_serve("--model", str(merged), "--device", "cpu", *serve_limits),
    }
    out: dict = {"threads": threads, "slots": args.slots, "max_tokens": args.max_tokens, "images": len(urls),
                 "servers": {}}
    for name in args.servers.split(","):
        if name != "edugraph-model" and (gguf is None or not llama.server_bin.is_file()):
            out["servers"][name] = {"skipped": f"llama.cpp build with llama-server absent in {llama.root}"}
            continue
        figures: dict = {mode: {} for mode in modes}
        with servers[name]() as url:
            for bodies, _ in modes.values():
                asyncio.run(chat_load(url, bodies, 2, 2, 0))  # warm-up
            position = 2
            for level in levels:
                count = max(args.requests, level)
                for mode, (bodies, contract) in modes.items():  # alternately, so outside load falls on both
                    run = asyncio.run(chat_load(url, bodies, level, count, position))
                    figures[mode][level] = chat_figures(run, ontology, contract)
                position += count
        out["servers"][name] = figures
    return out


def print_chat(record: dict, levels: list[int]) -> None:
    print(f"\n{'server':<16}{'schema':<9}{'conc':>5} {'req/s':>7} {'p50':>7} {'p95':>7} {'valid':>6} {'labels':>7} "
          f"{'tokens':>7}  problems")
    for name, figures in record["servers"].items():
        if "skipped" in figures:
            print(f"{name:<16} skipped: {figures['skipped']}")
            continue
        for mode, by_level in figures.items():
            for level in levels:
                f = by_level[level]
                print(f"{name:<16}{'yes' if mode == 'with_schema' else 'no':<9}{level:>5} {f['requests_per_s']:>7.2f} "
                      f"{f['p50_s']:>7.3f} {f['p95_s']:>7.3f} {f['valid_share']:>6.0%} {f['labels_valid_share']:>7.0%} "
                      f"{f['mean_completion_tokens'] or 0:>7.1f}  {f['problems'] or ''}{' failed ' + str(f['failed']) if f['failed'] else ''}")


# ---- both ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="batching,chat", help="batching, chat or both (comma-separated)")
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--window-ms", type=float, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=24, help="edugraph serve's generation bound")
    parser.add_argument("--backends", default="transformers,gguf", help="batching suite: backends")
    parser.add_argument("--images", type=int, default=8, help="batching suite: distinct pictures")
    parser.add_argument("--repeats", type=int, default=2, help="batching suite: alternating rounds per level and mode")
    parser.add_argument("--servers", default="llama-server,edugraph-gguf,edugraph-model", help="chat suite: servers")
    parser.add_argument("--max-tokens", type=int, default=64, help="chat suite: max_tokens of every request")
    parser.add_argument("--slots", type=int, default=4, help="chat suite: llama-server --parallel")
    parser.add_argument("--chat-images", type=int, default=64,
                        help="chat suite: distinct pictures (more than requests: no whole-image prompt cache hits)")
    args = parser.parse_args(argv)
    suites = set(args.suite.split(","))

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
        ontology = bound_ontology()
        ontology.save(merged / "ontology.json")
        record["ontology_version"] = ontology.version
        llama = LlamaCpp.locate()
        gguf = None
        if llama.available() and ({"gguf"} & set(args.backends.split(",")) and "batching" in suites
                                   or "chat" in suites):
            from edugraph_pipeline.gguf.convert import export_gguf

            gguf = Path(tmp) / "gguf"
            export_gguf(merged, gguf, "Q4_K_M", llama=llama)
        for backend in args.backends.split(",") if "batching" in suites else []:
            folder = merged if backend == "transformers" else gguf
            if folder is None:
                record["backends"][backend] = {"skipped": f"llama.cpp build absent in {llama.root}"}
                continue

            def loader(backend=backend, folder=folder):
                return open_model(backend, folder, device="cpu" if backend == "transformers" else None,
                                  max_new_tokens=args.max_new_tokens)

            results = measure(loader, bodies, levels, args.requests, modes, args.repeats)
            for level in levels:
                results.setdefault("throughput_ratio", {})[level] = round(
                    results["batched"][level]["requests_per_s"] / results["one_at_a_time"][level]["requests_per_s"], 2
                )
            results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            record["backends"][backend] = results
        if "chat" in suites:
            record["chat"] = chat_suite(args, merged, gguf, ontology, levels)

    if record["backends"]:
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
    if "chat" in record:
        print_chat(record["chat"], levels)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
