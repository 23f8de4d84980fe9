"""The GPU Docker image on a local engine, through Dagster Pipes (logs read from the container's output)."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from edugraph_pipeline import settings
from edugraph_pipeline.defs.training.launchers.base import (
    LOG_TAIL_LINES,
    PASSTHROUGH_ENV,
    StepFailed,
    TrainingLauncher,
    redacted,
    staging_plan,
)
from edugraph_pipeline.defs.training.launchers.defaults import DEFAULT_IMAGE, default_flag
from edugraph_pipeline.storage import ArtifactStore, url_scheme
from edugraph_pipeline.training.job import TrainingJob


def _pipes_message(line: str) -> dict | None:
    """The Pipes message a log line carries, or None for the step's ordinary output."""
    if '"__dagster_pipes_version"' not in line:
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and "__dagster_pipes_version" in message else None


class _ContainerLogsReader(dg.PipesMessageReader):
    """Reads Pipes messages from the container's log stream (like dagster-docker's reader), splitting the stream
    into whole lines, forwarding other lines (redacted) to stdout and keeping their tail for error messages."""

    def __init__(self) -> None:
        self._handler: dg.PipesMessageHandler | None = None
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    @contextmanager
    def read_messages(self, handler: dg.PipesMessageHandler) -> Iterator[dict]:
        from dagster_pipes import PipesDefaultMessageWriter

        self._handler = handler
        try:
            yield {PipesDefaultMessageWriter.STDIO_KEY: PipesDefaultMessageWriter.STDERR}
        finally:
            self._handler = None

    def consume(self, container) -> None:
        assert self._handler is not None
        pending = ""
        for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
            pending += chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else str(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                self._line(line)
        if pending:
            self._line(pending)

    def _line(self, line: str) -> None:
        message = _pipes_message(line)
        if message is not None:
            self._handler.handle_message(message)
            return
        line = redacted(line)
        self.tail.append(line)
        sys.stdout.write(line + "\n")  # the step's own output: into Dagster's captured stdout

    def no_messages_debug_text(self) -> str:
        return "Attempted to read Pipes messages from the training container's log stream."


def _default_mount(store: ArtifactStore | None) -> Path:
    """The folder every path of a training job lies in: the store's local root when the launcher is handed the
    store, else `EDUGRAPH_DATA_DIR`, or for a gs:// store its local mirror and work dirs (`EDUGRAPH_CACHE_DIR`),
    which is where the asset stages and reads artifacts."""
    if store is not None:
        return store.root
    if url_scheme(settings.data_location()):
        return settings.cache_dir()
    return settings.data_dir().expanduser().resolve()


class DockerLauncher(TrainingLauncher):
    """The training image on the local Docker engine (``DOCKER_HOST`` or the default socket).

    The data dir (for a gs:// store: its local mirror, `EDUGRAPH_CACHE_DIR`) is bind-mounted at the same absolute
    path, so every path in the job stays valid; the Hugging
    Face cache is mounted at /hf-cache; secrets (HF_TOKEN) go in as container environment only.
    """

    image: str = DEFAULT_IMAGE
    gpus: bool = Field(default=default_flag("EDUGRAPH_DOCKER_GPUS"),
                       description="Request every GPU (DeviceRequest count=-1, capability gpu).")
    data_dir: str | None = Field(
        default=None,
        description="Mounted read-write at the same path (default: EDUGRAPH_DATA_DIR; for a gs:// store its local "
        "mirror, EDUGRAPH_CACHE_DIR).",
    )
    hf_home: str | None = Field(
        default=None,
        description="Host Hugging Face cache mounted at /hf-cache (default: $HF_HOME or ~/.cache/huggingface "
        "when it exists; '' disables).",
    )
    volumes: list[str] = Field(default_factory=list, description="Extra bind mounts, `host:container[:ro]`.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra (non-secret) container environment.")
    passthrough_env: list[str] = Field(default_factory=lambda: list(PASSTHROUGH_ENV))
    network: str | None = Field(default=None, description="Docker network mode (None: the engine's default).")
    shm_size: str = "8g"
    user: str | None = Field(default=None, description="`uid:gid` to run as (None: the image's user).")
    python: str = "python"
    pull: bool = Field(default=False, description="Pull the image before running (else only when missing).")

    def _mounts(self, workdir: Path, store: ArtifactStore | None) -> tuple[dict[str, dict], dict[str, str]]:
        data = Path(self.data_dir).expanduser().resolve() if self.data_dir else _default_mount(store)
        data.mkdir(parents=True, exist_ok=True)
        volumes: dict[str, dict] = {str(data): {"bind": str(data), "mode": "rw"}}
        workdir = workdir.resolve()
        if not workdir.is_relative_to(data):
            volumes[str(workdir)] = {"bind": str(workdir), "mode": "rw"}
        env: dict[str, str] = {}
        hf_home = self.hf_home
        if hf_home is None:
            hf_home = settings.other_tool("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
            hf_home = hf_home if Path(hf_home).is_dir() else ""
        if hf_home:
            volumes[str(Path(hf_home).resolve())] = {"bind": "/hf-cache", "mode": "rw"}
            env["HF_HOME"] = "/hf-cache"
        for spec in self.volumes:
            host, _, rest = spec.partition(":")
            bind, _, mode = rest.partition(":")
            volumes[str(Path(host).expanduser().resolve())] = {"bind": bind or host, "mode": mode or "rw"}
        return volumes, env

    def launch(
        self,
        context: dg.AssetExecutionContext,
        *,
        job: TrainingJob,
        workdir: Path,
        identity: str | None = None,
        store: ArtifactStore | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        from docker.types import DeviceRequest

        import docker

        workdir.mkdir(parents=True, exist_ok=True)
        client = docker.from_env()
        if self.pull:
            client.images.pull(self.image)
        else:
            try:
                client.images.get(self.image)
            except docker.errors.ImageNotFound:
                context.log.info(f"Pulling {self.image}")
                client.images.pull(self.image)
        volumes, env = self._mounts(workdir, store)
        env.update(self.env)
        here = settings.child_environment()
        env.update({name: here[name] for name in self.passthrough_env if here.get(name)})
        command = self.step_command(self.python)
        mounted = [Path(bind["bind"]) for bind in volumes.values()]
        for path in (job.output_dir, job.work_dir):
            if path and not any(Path(path).resolve().is_relative_to(m) for m in mounted):
                # the step would write into the container's own disk and the result would be lost with it
                raise StepFailed(
                    f"{path} (the training job's output or work dir) is outside every mount "
                    f"({', '.join(sorted(str(m) for m in mounted))}): set the launcher's data_dir, or "
                    "EDUGRAPH_CACHE_DIR for a gs:// EDUGRAPH_DATA_DIR, to the folder the artifact store writes to"
                )
        for path in staging_plan(job.to_dict())["inputs"]:
            if not any(Path(path).is_relative_to(m) for m in mounted):
                context.log.warning(f"{path} (in the training job) is outside every mount; the container cannot see it")
        reader = _ContainerLogsReader()
        with dg.open_pipes_session(
            context=context,
            context_injector=dg.PipesEnvContextInjector(),
            message_reader=reader,
            extras={"job": job.to_dict()},
        ) as session:
            context.log.info(
                f"Running {command} in {self.image} (gpus={self.gpus}, mounts={sorted(v['bind'] for v in volumes.values())}, "
                f"env names={sorted(env)})"
            )
            container = client.containers.create(
                image=self.image,
                command=command,
                environment={**env, **session.get_bootstrap_env_vars()},
                volumes=volumes,
                working_dir=str(workdir.resolve()),
                device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if self.gpus else None,
                network_mode=self.network,
                shm_size=self.shm_size,
                user=self.user,
                labels={"edugraph/dagster-run-id": context.run.run_id, "edugraph/step": "training"},
                detach=True,
            )
            try:
                container.start()
                reader.consume(container)
                status = container.wait().get("StatusCode", -1)
            finally:
                try:
                    container.remove(force=True)
                except docker.errors.APIError as error:  # already gone
                    context.log.warning(f"Could not remove container {container.short_id}: {error}")
            if status != 0:
                raise StepFailed(
                    f"Training container ({self.image}) exited with status {status}. Last log lines:\n"
                    + "\n".join(reader.tail)
                )
        return dg.PipesClientCompletedInvocation(session)

