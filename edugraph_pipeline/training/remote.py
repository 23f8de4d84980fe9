"""In-machine wrapper of the gcp and vertex launchers: GCS staging around the training entry point, with a Pipes relay.

``python -m edugraph_pipeline.training.remote [--message-interval S] [--local-root DIR] [-- STEP COMMAND...]``
(default step: ``python -m edugraph_pipeline.training.entrypoint``) runs inside the training image on the VM or
the Vertex worker, with the Pipes bootstrap environment the launcher's GCS context injector and message reader
produced:

1. loads the Pipes context from GCS (``DAGSTER_PIPES_CONTEXT`` = ``{bucket, key}``); its extras carry the job and
   ``edugraph_staging`` = ``{bucket, root, inputs_root, inputs, outputs, scratch, checkpoints, bases}`` (absolute
   paths on the Dagster host; ``inputs_root``, ``checkpoints`` and ``bases`` are stable per job identity, ``root``
   is this attempt's);
2. downloads every input from ``gs://<bucket>/<inputs_root>/files<path>`` to the same path (below ``--local-root``
   when given - the tests' stand-in machines share one disk, so each gets its own folder; job paths are rewritten)
   and creates the ``scratch`` folders (the job's work dir: its checkpoints come from GCS, not from the host);
3. runs the step with a file-based Pipes context and message file (the entry point needs no GCS code) and relays
   each message to GCS like dagster-pipes' ``PipesGCSMessageWriter`` (``DAGSTER_PIPES_MESSAGES`` =
   ``{bucket, key_prefix}``) every ``--message-interval`` seconds; ``EDUGRAPH_CHECKPOINT_SYNC`` =
   ``gs://<bucket>/<checkpoints>`` makes the step restore and sync its checkpoints (`training/checkpoint_sync.py`);
   the step's stdout/stderr go to our stdout (the serial console) and to ``<root>/logs/step.log``;
4. uploads the outputs, then ``<root>/status.json`` (``{"exit_code": N, "error": ...}``) - the launcher's signal -
   and exits 0 whatever the step did: the step's outcome travels in the status, and a non-zero exit would make
   Vertex AI run a deterministic failure (out of memory, bad data) again, up to 5 restarts and 3 job retries on
   paid GPUs. It exits non-zero only when it could not write the status; a preemption kills it before that.

``EDUGRAPH_BASE_SYNC`` = ``gs://<bucket>/<bases>`` (the job's stable folder) lets the step restore the base model's Hub
snapshot and the stage-1-merged base an earlier machine of the job left there, instead of downloading and merging
them again (`checkpoint_sync.synced_bases`).

With the artifact store in GCS, ``store_inputs`` (``{path, url, files}``) are read from the store's committed
version prefixes, each file checked against its manifest entry (size, sha256); ``store_outputs`` (``{path, url}``)
are uploaded to ``<url>/<new version id>/`` and reported, with size, sha256 and md5 per file (small JSON files
also inline), in ``<root>/outputs.json``: the publication on the Dagster host commits them, nothing is downloaded
(`storage.transfer`).

Only google-cloud-storage, dagster-pipes and the standard library: it must not import dagster.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import gcs
from edugraph_pipeline.storage.transfer import read_version, write_version
from edugraph_pipeline.training.checkpoint_sync import BASE_SYNC_ENV
from edugraph_pipeline.training.checkpoint_sync import SYNC_ENV as CHECKPOINT_SYNC_ENV

ENTRYPOINT_MODULE = "edugraph_pipeline.training.entrypoint"
LOG_UPLOAD_INTERVAL_S = 30.0
DEFAULT_MESSAGE_INTERVAL_S = 10.0


def reroot(value: Any, mapping: dict[str, str]) -> Any:
    """`value` with every string equal to a key of `mapping`, or below it, moved to the mapped path."""
    if isinstance(value, dict):
        return {k: reroot(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [reroot(v, mapping) for v in value]
    if isinstance(value, str):
        for old in sorted(mapping, key=len, reverse=True):
            if value == old or value.startswith(old + "/"):
                return mapping[old] + value[len(old) :]
    return value


def _message_writer(client, interval: float):
    """dagster-pipes' GCS message writer, with two changes to its channel:

    * no ``get_bucket`` call (``storage.buckets.get``, which ``roles/storage.objectAdmin`` lacks): the step needs
      object permissions only;
    * chunks numbered after those already under the key prefix: a restarted worker (Vertex restarts the container of
      a preempted worker inside the same job and Pipes session) continues the sequence the launcher reads instead of
      overwriting chunks it has read.
    """
    from dagster_pipes import PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel

    class Channel(PipesBlobStoreMessageWriterChannel):
        def __init__(self, bucket: str, key_prefix: str | None) -> None:
            super().__init__(interval=interval)
            self._gcs_bucket = client.bucket(bucket)
            self._key_prefix = (key_prefix or "").strip("/")
            listed = client.list_blobs(bucket, prefix=f"{self._key_prefix}/" if self._key_prefix else None)
            numbers = [b.name.rsplit("/", 1)[-1].removesuffix(".json") for b in listed]
            self._offset = max((int(n) for n in numbers if n.isdigit()), default=0)

        def upload_messages_chunk(self, payload, index: int) -> None:
            name = f"{index + self._offset}.json"
            key = f"{self._key_prefix}/{name}" if self._key_prefix else name
            self._gcs_bucket.blob(key).upload_from_string(payload.read())

    class Writer(PipesBlobStoreMessageWriter):
        def make_channel(self, params):
            return Channel(params["bucket"], params.get("key_prefix"))

    return Writer(interval=interval)


class _MessageRelay(threading.Thread):
    """Tails the step's Pipes message file and hands each message to the GCS writer channel."""

    def __init__(self, path: Path, channel) -> None:
        super().__init__(daemon=True)
        self.path, self.channel = path, channel
        self.done = threading.Event()
        self._position = 0
        self._pending = ""

    def drain(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as handle:
            handle.seek(self._position)
            data = handle.read()
            self._position = handle.tell()
        self._pending += data
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                try:
                    self.channel.write_message(json.loads(line))
                except json.JSONDecodeError:
                    print(f"edugraph-remote: skipped a malformed Pipes message line: {line[:200]}", flush=True)

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.drain()

    def finish(self) -> None:
        self.done.set()
        self.join(timeout=30)
        self.drain()
        if self._pending.strip():
            self._pending += "\n"
            self.drain()


def _run_step(command: list[str], env: dict[str, str], log_path: Path, upload_log) -> int:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace"
    )
    last_upload = time.monotonic()
    with log_path.open("a", encoding="utf-8") as log:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            if time.monotonic() - last_upload > LOG_UPLOAD_INTERVAL_S:
                log.flush()
                upload_log()
                last_upload = time.monotonic()
    return process.wait()


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m edugraph_pipeline.training.remote", description=__doc__.splitlines()[0])
    parser.add_argument("--message-interval", type=float, default=DEFAULT_MESSAGE_INTERVAL_S,
                        help="seconds between uploads of the step's Pipes messages")
    parser.add_argument("--local-root", default="",
                        help="place every job path below this folder on this machine (default: the same paths)")
    parser.add_argument("step", nargs="*", help="the step command after `--` (default: the training entry point)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from dagster_pipes import decode_param, encode_param
    from google.cloud.storage.retry import DEFAULT_RETRY

    arguments = parse_arguments(list(sys.argv[1:] if argv is None else argv))
    command = arguments.step or [sys.executable, "-m", ENTRYPOINT_MODULE]
    local_root = arguments.local_root.rstrip("/")
    interval = arguments.message_interval

    context_params = decode_param(settings.other_tool("DAGSTER_PIPES_CONTEXT"))
    message_params = decode_param(settings.other_tool("DAGSTER_PIPES_MESSAGES"))
    client = gcs.client()
    bucket = client.bucket(context_params["bucket"])
    context = json.loads(bucket.blob(context_params["key"]).download_as_bytes())
    staging = (context.get("extras") or {}).get("edugraph_staging") or {}
    root = staging.get("root") or context_params["key"].rsplit("/pipes/", 1)[0]
    data_bucket = client.bucket(staging.get("bucket") or context_params["bucket"])

    work = Path(tempfile.mkdtemp(prefix="edugraph-remote-"))
    log_path = work / "step.log"
    log_path.touch()

    def upload_log() -> None:
        try:
            data_bucket.blob(f"{root}/logs/step.log").upload_from_filename(str(log_path))
        except Exception as error:  # noqa: BLE001 - logs are best effort
            print(f"edugraph-remote: could not upload the step log: {error}", flush=True)

    exit_code: int | None = None
    error: str | None = None
    with _message_writer(client, interval).open(message_params) as channel:
        relay = None
        try:
            scratch = staging.get("scratch", [])
            store_inputs = staging.get("store_inputs", [])
            store_outputs = [entry["path"] for entry in staging.get("store_outputs", [])]
            mapping = {path: local_root + path for path in [
                *staging.get("inputs", []), *staging.get("outputs", []), *scratch,
                *(entry["path"] for entry in store_inputs), *store_outputs]}
            for source in store_inputs:
                size = read_version(client, source, mapping[source["path"]])
                print(f"edugraph-remote: read {source['path']} from {source['url']} ({len(source['files'])} files, "
                      f"{size} bytes)", flush=True)
            inputs_root = staging.get("inputs_root") or root
            for path in staging.get("inputs", []):
                count = gcs.download_tree(client, data_bucket.name, inputs_root, path, mapping[path])
                if count == 0:  # an empty folder (e.g. a fresh checkpoint dir): nothing was staged
                    Path(mapping[path]).mkdir(parents=True, exist_ok=True)
                print(f"edugraph-remote: downloaded {path} ({count} files)", flush=True)
            for path in [*staging.get("outputs", []), *store_outputs]:
                Path(mapping[path]).parent.mkdir(parents=True, exist_ok=True)
            for path in scratch:
                Path(mapping[path]).mkdir(parents=True, exist_ok=True)
            extras = dict(context.get("extras") or {})
            if "job" in extras:
                extras["job"] = reroot(extras["job"], mapping)
            context["extras"] = extras
            context_file = work / "context.json"
            context_file.write_text(json.dumps(context), encoding="utf-8")
            messages_file = work / "messages.jsonl"
            messages_file.touch()
            env = settings.child_environment(
                DAGSTER_PIPES_CONTEXT=encode_param({"path": str(context_file)}),
                DAGSTER_PIPES_MESSAGES=encode_param({"path": str(messages_file)}),
                **({CHECKPOINT_SYNC_ENV: staging["checkpoints"]} if staging.get("checkpoints") else {}),
                **({BASE_SYNC_ENV: staging["bases"]} if staging.get("bases") else {}),
            )
            relay = _MessageRelay(messages_file, channel)
            relay.start()
            print(f"edugraph-remote: running {command}", flush=True)
            exit_code = _run_step(command, env, log_path, upload_log)
            relay.finish()
            relay = None
            print(f"edugraph-remote: step exited with {exit_code}", flush=True)
            if exit_code == 0:
                for path in staging.get("outputs", []):
                    if Path(mapping[path]).exists():
                        count = gcs.upload_tree(data_bucket, root, path, mapping[path])
                        print(f"edugraph-remote: uploaded {path} ({count} files)", flush=True)
                written = {}
                for target in staging.get("store_outputs", []):
                    if Path(mapping[target["path"]]).is_dir():
                        written[target["path"]] = write_version(client, target["url"], mapping[target["path"]])
                        print(f"edugraph-remote: wrote {target['path']} to {target['url']}/"
                              f"{written[target['path']]['version']}", flush=True)
                if written:  # before status.json: the launcher reads it once the status says we are done
                    data_bucket.blob(f"{root}/outputs.json").upload_from_string(
                        json.dumps(written), content_type="application/json")
        except Exception:  # noqa: BLE001 - reported through status.json and the step log
            error = traceback.format_exc()
            print(error, flush=True)
            with log_path.open("a", encoding="utf-8") as log:
                log.write(error)
            exit_code = exit_code or 1
        finally:
            if relay is not None:
                relay.finish()
    # the writer channel is closed: every Pipes message is in GCS before the status says we are done
    upload_log()
    if error:
        error = error.strip().splitlines()[-1]
    elif exit_code:
        error = f"the step exited {exit_code}: {last_line(log_path)}"
    status = {"exit_code": exit_code, "error": error}
    data_bucket.blob(f"{root}/status.json").upload_from_string(json.dumps(status), content_type="application/json",
                                                               retry=DEFAULT_RETRY)
    return 0  # reported: whatever the step did, a restart of this container would not change it


def last_line(log_path: Path) -> str:
    """The step log's last non-empty line (an error's own message, as a rule), or a note that there is none."""
    lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:500] if lines else "(no output)"


if __name__ == "__main__":
    sys.exit(main())
