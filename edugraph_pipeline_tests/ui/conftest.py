"""Fixtures for the browser test of the Dagster UI: a real webserver (and daemon) on 127.0.0.1, and headless
Debian Chromium driven by Playwright's Python package (never `playwright install`: see .ci/install-browser.sh)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from edugraph_pipeline_tests.conftest import skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("EDUGRAPH_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps calling Google services, which floods a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CODE_LOCATION = "edugraph_pipeline.definitions"
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _stop(process: subprocess.Popen) -> None:
    """Stops a process started here and the children it spawned (code servers, run workers): its own group."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


@dataclass
class DagsterUI:
    url: str
    dagster_home: Path
    data_dir: Path
    logs: dict[str, Path]

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def log_tail(self, chars: int = 4000) -> str:
        return "\n".join(
            f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}" for name, path in self.logs.items()
        )


@pytest.fixture(scope="module")
def browser_executable() -> Path:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is absent (install Debian's chromium: .ci/install-browser.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        skip_or_fail(f"playwright is not importable ({error}); pip install the version pinned in requirements.lock")
    return CHROMIUM


@pytest.fixture(scope="module")
def dagster_ui(browser_executable, ontology_remote, tmp_path_factory):
    """`dagster-webserver` and `dagster-daemon run` for the pipeline's code location on a free 127.0.0.1 port.

    DAGSTER_HOME is a temporary folder holding an unmodified copy of the repository's dagster.yaml: its
    `concurrency` section implies the QueuedRunCoordinator, so runs launched from the UI wait in the queue until
    the daemon dequeues them, exactly as with `dagster dev` or the README's `dagster-daemon run` beside the
    webserver. Two ontology releases are added as dynamic partitions before the servers start.
    """
    import dagster as dg

    root = tmp_path_factory.mktemp("dagster-ui")
    home, data_dir, cache_dir = root / "home", root / "data", root / "cache"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("ontology_releases", ["v0.3.0", "v0.4.0"])

    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EDUGRAPH_DATA_DIR": str(data_dir),
        "EDUGRAPH_CACHE_DIR": str(cache_dir),
        "EDUGRAPH_ONTOLOGY_REPO": str(ontology_remote),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("EDUGRAPH_HF_REPO", None)
    env.pop("HF_TOKEN", None)
    logs = {"webserver": root / "webserver.log", "daemon": root / "daemon.log"}
    commands = {
        "webserver": [_bin("dagster-webserver"), "-m", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(port)],
        "daemon": [_bin("dagster-daemon"), "run", "-m", CODE_LOCATION],
    }
    processes: list[subprocess.Popen] = []
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", dagster_home=home, data_dir=data_dir, logs=logs)
    try:
        for name, command in commands.items():
            log = logs[name].open("wb")
            processes.append(
                subprocess.Popen(
                    command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if any(process.poll() is not None for process in processes):
                pytest.fail(f"the Dagster webserver or daemon exited at startup\n{ui.log_tail()}")
            try:
                with urllib.request.urlopen(f"{ui.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the Dagster webserver did not answer within {STARTUP_TIMEOUT_S}s\n{ui.log_tail()}")
            time.sleep(0.5)
        yield ui
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture
def browser_page(browser_executable):
    """A fresh headless Chromium profile and page (2560x1440, so that the asset graph is drawn at full detail)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="edugraph-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(browser_executable),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 2560, "height": 1440},
        )
        # The "Join the Dagster community" dialog on localhost would cover the page: dismissed as a user would.
        context.add_init_script("window.localStorage.setItem('communityNux', '1')")
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder
