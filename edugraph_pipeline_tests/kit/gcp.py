"""Local stand-ins for Google Cloud: the GCS emulator (gcp-storage-emulator, in-process) and a fake Compute Engine
API that records requests and "boots" a VM by running the startup script's `docker run` command as a local
subprocess (the image's python is this interpreter; STORAGE_EMULATOR_HOST points it at the emulator; HOME - and
so the Hugging Face cache - is on the VM's own disk). With `run_scripts` a VM runs its whole start script instead
(`kit/cos_vm.py`), against the metadata server and Secret Manager this server also answers.

Capacity and preemption as Compute Engine shows them: a zone in `exhausted` answers the insert with an operation
that ends in that error code; the first `preempt_vms` VMs are preempted (the step killed, a
``compute.instances.preempted`` operation recorded, the VM deleted as ``instanceTerminationAction: DELETE`` says)
once `preempt_after_checkpoints` checkpoints were synced to the bucket."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edugraph_pipeline_tests.kit.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_docker_run(script: str) -> tuple[str, dict[str, str | None], list[str]]:
    """(image, env, command) of the `docker run` line in a startup script; `-e NAME` alone maps to None."""
    line = next(line for line in script.splitlines() if line.startswith("docker run "))
    return parse_docker_args(shlex.split(line)[2:])


def parse_docker_args(tokens: list[str]) -> tuple[str, dict[str, str | None], list[str]]:
    """(image, env, command) of `docker run`'s arguments."""
    env: dict[str, str | None] = {}
    with_value = {"--name", "--network", "--shm-size", "--volume", "-v", "--device", "--gpus"}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-e", "--env"):
            name, sep, value = tokens[i + 1].partition("=")
            env[name] = value if sep else None
            i += 2
        elif token in with_value:
            i += 2
        elif token.startswith("-") or token.startswith("${"):
            i += 1
        else:
            return token, env, tokens[i + 1 :]
    raise AssertionError(f"no image in docker run {tokens!r}")


def on_own_disk(command: list[str], disk: Path) -> list[str]:
    """The machine's command with the in-machine wrapper told to keep the job's paths below `disk`: the stand-in
    machines share this host's file system, so each gets a folder of its own (``--local-root``)."""
    from edugraph_pipeline.defs.training.launchers import REMOTE_MODULE

    at = command.index(REMOTE_MODULE) + 1
    return [*command[:at], "--local-root", str(disk), *command[at:]]


def checkpoint_markers() -> set[str]:
    """Every checkpoint's marker in the emulator (STORAGE_EMULATOR_HOST is set in the test's environment); the
    markers of the synced bases (``bases/...``) are not checkpoints."""
    from edugraph_pipeline.cloud.gcs import client as gcs_client

    client = gcs_client()
    return {b.name for bucket in client.list_buckets() for b in client.list_blobs(bucket.name)
            if re.search(r"/checkpoints/checkpoint-\d+/_EDUGRAPH_COMPLETE\.json$", b.name)}


def run_container(command: list[str], env: dict[str, str], preempt_after: int | None) -> tuple[int, str, bool]:
    """Run a "container" command; with `preempt_after`, kill it (the host taken back: no time to clean up) once
    that many new checkpoints were synced. Returns (exit status, output, preempted)."""
    before = checkpoint_markers() if preempt_after is not None else set()
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    preempted = False
    while process.poll() is None and time.monotonic() < deadline:
        if preempt_after is not None and len(checkpoint_markers() - before) >= preempt_after:
            os.killpg(process.pid, signal.SIGKILL)
            preempted = True
            break
        time.sleep(0.05)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    reader.join(timeout=10)
    return process.returncode, "".join(output), preempted


class FakeCompute:
    """Records every request; instances.insert starts the VM simulation."""

    def __init__(self, vm_root: Path, vm_secret_env: dict[str, str]):
        self.exhausted: dict[str, str] = {}  # zone -> error code its inserts end with
        self.preempt_vms = 0
        self.preempt_after_checkpoints = 2
        self.operations: dict[str, dict] = {}
        self.booted: list[str] = []
        self.requests: list[dict] = []
        self.instances: dict[str, dict] = {}
        self.serial: dict[str, str] = {}
        self.vm_root = vm_root
        self.vm_secret_env = vm_secret_env  # what Secret Manager would hand the VM
        self.run_scripts = False  # boot by running the real start script (kit/cos_vm.py)
        self.pull_error = ""  # with run_scripts: `docker pull` fails with this daemon error
        self.docker_run_exit, self.docker_run_error = 0, ""  # with run_scripts: `docker run` fails before the step
        self.vm_threads: list[threading.Thread] = []
        self.emulator_host = ""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = self.path.split("?", 1)[0]
                path = path[path.index("/projects/") :] if "/projects/" in path else path
                fake.requests.append({"method": method, "path": path, "body": body, "query": self.path})
                code, payload = fake.route(method, path, body)
                self._reply(code, payload)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.endpoint = f"{self.root}/compute/v1/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        for thread in self.vm_threads:
            thread.join(timeout=60)
        self.server.shutdown()
        self.server.server_close()

    # ---- routing

    def route(self, method: str, path: str, body: str) -> tuple[int, dict]:
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            return 200, {"access_token": "ya29.stand-in", "expires_in": 3599, "token_type": "Bearer"}
        if path == "/computeMetadata/v1/instance/preempted":
            return 200, False
        secret = re.fullmatch(r"/projects/[^/]+/secrets/[^/]+/versions/[^/:]+:access", path)
        if secret:
            data = base64.b64encode(self.vm_secret_env.get("HF_TOKEN", "").encode()).decode()
            return 200, {"name": path.strip("/").removesuffix(":access"), "payload": {"data": data}}
        m = re.fullmatch(r"/projects/([^/]+)/zones/([^/]+)/(instances|operations)(?:/([^/]+))?(?:/(\w+))?", path)
        if not m:
            return 404, {"error": {"code": 404, "message": f"no route {path}"}}
        _, zone, kind, name, sub = m.groups()
        if kind == "operations":
            if name is None:
                return 200, {"items": [op for op in self.operations.values() if op["zone"] == zone]}
            return 200, self.operations.get(name, {"kind": "compute#operation", "name": name, "status": "DONE"})
        if method == "POST" and name is None:
            spec = json.loads(body)
            op_name = f"op-insert-{spec['name']}-{zone}"
            if zone in self.exhausted:
                code = self.exhausted[zone]
                error = {"errors": [{"code": code, "message": f"The zone '{zone}' does not have enough resources."}]}
                self.operations[op_name] = {"name": op_name, "zone": zone, "status": "DONE", "error": error,
                                            "operationType": "insert"}
                return 200, {"kind": "compute#operation", "name": op_name, "status": "RUNNING"}
            self.instances[spec["name"]] = {"name": spec["name"], "status": "PROVISIONING", "spec": spec, "zone": zone}
            thread = threading.Thread(target=self._boot, args=(spec, zone), daemon=True)
            self.vm_threads.append(thread)
            thread.start()
            return 200, {"kind": "compute#operation", "name": op_name, "status": "RUNNING"}
        instance = self.instances.get(name or "")
        if instance is None or instance["status"] == "DELETED" or instance["zone"] != zone:
            return 404, {"error": {"code": 404, "message": f"instance {name} not found"}}
        if method == "DELETE":
            instance["status"] = "DELETED"
            return 200, {"kind": "compute#operation", "name": f"op-delete-{name}", "status": "DONE"}
        if sub == "serialPort":
            return 200, {"contents": self.serial.get(name, ""), "start": "0", "next": "1"}
        return 200, {"name": name, "status": instance["status"]}

    def _boot(self, spec: dict, zone: str) -> None:
        """The VM: run the startup script's container command locally, like COS would run the image."""
        name = spec["name"]
        self.booted.append(name)
        preempt = len(self.booted) <= self.preempt_vms
        script = next(i["value"] for i in spec["metadata"]["items"] if i["key"] == "startup-script")
        if self.run_scripts:
            self._run_script(name, script)
            return
        image, env, command = parse_docker_run(script)
        process_env = {
            "PATH": os.environ["PATH"],
            "STORAGE_EMULATOR_HOST": self.emulator_host,
            "PYTHONPATH": str(REPO_ROOT),
            "HOME": str(self.vm_root / name / "home"),  # the VM's own disk: its own Hugging Face cache
        }
        for key, value in env.items():
            if value is None:  # `-e NAME`: the startup script's environment (the secret it read)
                if key in self.vm_secret_env:
                    process_env[key] = self.vm_secret_env[key]
            else:
                process_env[key] = value
        self.instances[name]["status"] = "RUNNING"
        self.instances[name]["image"] = image
        returncode, output, preempted = run_container(
            on_own_disk(command, self.vm_root / name), process_env, self.preempt_after_checkpoints if preempt else None
        )
        self.serial[name] = f"edugraph: running the training step\n{output}\nedugraph: step exited with status {returncode}\n"
        if preempted:
            op_name = f"op-preempted-{name}"
            self.operations[op_name] = {
                "name": op_name, "zone": zone, "status": "DONE", "operationType": "compute.instances.preempted",
                "targetLink": f"https://www.googleapis.com/compute/v1/projects/p/zones/{zone}/instances/{name}",
            }
            self.instances[name]["status"] = "DELETED"  # instanceTerminationAction: DELETE
        elif self.instances[name]["status"] != "DELETED":
            self.instances[name]["status"] = "TERMINATED"  # `shutdown -h now` after the step

    def _run_script(self, name: str, script: str) -> None:
        from edugraph_pipeline_tests.kit.cos_vm import run_start_script

        self.instances[name]["status"] = "RUNNING"
        disk = self.vm_root / name
        disk.mkdir(parents=True, exist_ok=True)
        returncode, output = run_start_script(
            script, disk, server_root=self.root, emulator_host=self.emulator_host, pull_error=self.pull_error,
            run_exit=self.docker_run_exit, run_error=self.docker_run_error,
        )
        self.serial[name] = output
        if self.instances[name]["status"] != "DELETED":  # the script deletes its VM; else it shut down
            self.instances[name]["status"] = "TERMINATED"

    # ---- views

    def inserted(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests if r["method"] == "POST" and r["path"].endswith("/instances")]

    def deleted(self) -> list[str]:
        return [r["path"].rsplit("/", 1)[1] for r in self.requests if r["method"] == "DELETE"]


class StorageEmulator:
    def __init__(self, bucket: str):
        from gcp_storage_emulator.server import create_server

        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.server = create_server("127.0.0.1", self.port, in_memory=True, default_bucket=bucket)

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()
