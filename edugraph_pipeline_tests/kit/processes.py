"""A server as its own process on a free local port, until a `with` block ends (tests and bench): started, polled
until its readiness route answers 200, stopped (SIGTERM, then SIGKILL) whatever happens; its log is kept so a
start that fails says why."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from edugraph_pipeline import settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(command: Callable[[int], list[str]], *, name: str, ready_path: str, timeout: float,
           stop_wait: float = 30, poll: float = 0.2) -> Iterator[str]:
    """Run `command(port)` until the block ends; yield its base URL once `ready_path` answers 200."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT,
                                   env=settings.child_environment())
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{name} exited {process.returncode}:\n{log.read()[-4000:]}")
                try:
                    if httpx.get(f"{url}{ready_path}", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout} s")
                time.sleep(poll)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_wait)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(stop_wait)
