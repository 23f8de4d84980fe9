"""A local stand-in for the Vertex AI REST API (v1 customJobs: create, get, cancel) that "runs" a CustomJob by
executing its container command as a local subprocess, like `FakeCompute` does for a VM.

`restart_after_checkpoints` simulates a spot preemption that Vertex absorbs: once that many checkpoints were synced,
the worker is killed and its container started again on a fresh disk, inside the same job. A container that exits
non-zero is restarted in place, as Vertex does, up to `worker_restarts` times, then the job ends FAILED ("The replica
workerpool0-0 exited with a non-zero status of N"). `fail_without_result` makes the first jobs end FAILED while
their worker never reports (Vertex finding no capacity: RESOURCE_EXHAUSTED); `job_errors` makes the next jobs end
FAILED with the given ``(google.rpc code, message)`` before their container runs (an image it cannot pull, a
stockout...)."""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edugraph_pipeline_tests.kit.gcp import REPO_ROOT, free_port, on_own_disk, run_container


class FakeVertex:
    def __init__(self, worker_root: Path):
        from google.cloud.aiplatform_v1 import types

        self.types = types
        self.worker_root = worker_root
        self.emulator_host = ""
        self.restart_after_checkpoints: int | None = None
        self.fail_without_result = 0
        self.job_errors: list[tuple[int, str]] = []
        self.worker_restarts = 5
        self.jobs: dict[str, dict] = {}  # name -> {"job": CustomJob, "workers": [...], "cancelled": bool}
        self.requests: list[dict] = []
        self.threads: list[threading.Thread] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = self.path.split("?", 1)[0]
                fake.requests.append({"method": method, "path": path, "body": body})
                code, payload = fake.route(method, path, body)
                data = payload.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        for thread in self.threads:
            thread.join(timeout=60)
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, body: str) -> tuple[int, str]:
        types = self.types
        create = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/customJobs", path)
        if method == "POST" and create:
            job = types.CustomJob.from_json(body, ignore_unknown_fields=False)
            job.name = f"{create.group(1)}/customJobs/{len(self.jobs) + 1000}"
            job.state = types.JobState.JOB_STATE_PENDING
            self.jobs[job.name] = {"job": job, "workers": [], "cancelled": False}
            thread = threading.Thread(target=self._run, args=(job.name,), daemon=True)
            self.threads.append(thread)
            thread.start()
            return 200, types.CustomJob.to_json(job)
        named = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+/customJobs/[^/:]+)(:cancel)?", path)
        if not named or named.group(1) not in self.jobs:
            return 404, json.dumps({"error": {"code": 404, "message": f"no route {method} {path}", "status": "NOT_FOUND"}})
        entry = self.jobs[named.group(1)]
        if named.group(2):
            entry["cancelled"] = True
            return 200, "{}"
        return 200, types.CustomJob.to_json(entry["job"])

    def _run(self, name: str) -> None:
        types = self.types
        entry = self.jobs[name]
        job = entry["job"]
        (pool,) = job.job_spec.worker_pool_specs
        env = {
            "PATH": os.environ["PATH"],
            "STORAGE_EMULATOR_HOST": self.emulator_host,
            "PYTHONPATH": str(REPO_ROOT),
            **{e.name: e.value for e in pool.container_spec.env},
        }
        job.state = types.JobState.JOB_STATE_RUNNING
        if len(self.jobs) <= self.fail_without_result:
            job.state = types.JobState.JOB_STATE_FAILED
            job.error.code = 8  # google.rpc.Code.RESOURCE_EXHAUSTED
            job.error.message = "Resources are insufficient in region: us-central1 (spot capacity)."
            return
        if self.job_errors:
            job.error.code, job.error.message = self.job_errors.pop(0)
            job.state = types.JobState.JOB_STATE_FAILED
            return
        restarts_left = 1 if self.restart_after_checkpoints is not None else 0
        exits_left = self.worker_restarts
        while True:
            worker = f"{name.rsplit('/', 1)[1]}-{len(entry['workers'])}"  # a fresh VM, a fresh disk
            entry["workers"].append(worker)
            preempt_after = self.restart_after_checkpoints if restarts_left else None
            command = on_own_disk(list(pool.container_spec.command), self.worker_root / worker)
            returncode, output, preempted = run_container(command, {**env, "HOME": str(self.worker_root / worker)},
                                                          preempt_after)
            entry.setdefault("outputs", []).append(output)
            if preempted and restarts_left:
                restarts_left -= 1
                continue
            if returncode != 0 and exits_left:  # Vertex restarts a worker that exited non-zero
                exits_left -= 1
                continue
            break
        if returncode == 0:
            job.state = types.JobState.JOB_STATE_SUCCEEDED
        else:
            job.state = types.JobState.JOB_STATE_FAILED
            job.error.message = f"The replica workerpool0-0 exited with a non-zero status of {returncode}."
