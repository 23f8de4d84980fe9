"""A stand-in Compute Engine VM that runs its real start script (`FakeCompute.run_scripts`): bash runs the script the
launcher generated, as Container-Optimized OS would, with the VM's disk a folder of its own and the commands COS
provides replaced at the protocol level:

* ``curl`` reaches the stand-ins instead of Google's hosts - the metadata server, Compute Engine and Secret Manager
  (`FakeCompute`'s server), GCS (the emulator) - with the script's own requests, headers and bodies (one header
  changed where the emulator differs from GCS, below);
* ``docker`` pulls nothing and runs the container's command as a local process (the image's python is this
  interpreter, the wrapper told to keep the job's paths on this VM's disk); a test makes the pull fail
  (``pull_error``) or ``docker run`` fail before the container starts (``run_exit``, ``run_error``) the way Docker
  does;
* ``docker-credential-gcr`` and ``shutdown`` do nothing. GPUs are not simulated: run it with no accelerator.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_start_script(script: str, disk: Path, *, server_root: str, emulator_host: str, pull_error: str = "",
                     run_exit: int = 0, run_error: str = "") -> tuple[int, str]:
    """Run `script` on a VM whose disk is `disk`; returns (exit status, console output)."""
    stubs = disk / "usr-bin"
    stubs.mkdir(parents=True, exist_ok=True)
    real_curl = shutil.which("curl")
    assert real_curl, "the stand-in VM needs curl on this host"
    rewrites = {
        "https://storage.googleapis.com": emulator_host,
        "https://compute.googleapis.com/compute/v1": f"{server_root}/compute/v1",
        "https://secretmanager.googleapis.com/v1": f"{server_root}/secretmanager/v1",
        "http://metadata.google.internal/computeMetadata/v1": f"{server_root}/computeMetadata/v1",
    }
    lines = ["#!/bin/bash", "# curl on the stand-in VM: Google's hosts answered by the stand-ins", "args=()",
             'for a in "$@"; do']
    for google, local in rewrites.items():
        lines.append(f'  a="${{a//{google.replace("/", chr(92) + "/")}/{local}}}"')
    # gcp-storage-emulator reads any application/json body as object metadata, even a media upload's content
    # (GCS stores it as the object): such a body reaches the emulator as application/octet-stream.
    lines += ['  [[ "$a" == "Content-Type: application/json" && "$*" == *uploadType=media* ]] '
              '&& a="Content-Type: application/octet-stream"']
    lines += ['  args+=("$a")', "done", f'exec {real_curl} "${{args[@]}}"']
    _stub(stubs / "curl", "\n".join(lines) + "\n")
    _stub(stubs / "docker", f"#!{sys.executable}\nimport sys\nfrom edugraph_pipeline_tests.kit.cos_vm import fake_docker\n"
                            "sys.exit(fake_docker(sys.argv[1:]))\n")
    for name in ("docker-credential-gcr", "shutdown"):
        _stub(stubs / name, "#!/bin/bash\nexit 0\n")
    # The script's own state folders, on this VM's disk.
    script = script.replace("\nSTATE=/var/lib/edugraph\n", f"\nSTATE={disk}/var/lib/edugraph\n")
    script = script.replace("\nWORK=/var/tmp/edugraph\n", f"\nWORK={disk}/var/tmp/edugraph\n")
    path = disk / "startup-script.sh"
    path.write_text(script, encoding="utf-8")
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "STORAGE_EMULATOR_HOST": emulator_host,
        "FAKE_VM_DISK": str(disk),
        "FAKE_DOCKER_PULL_ERROR": pull_error,
        "FAKE_DOCKER_RUN_EXIT": str(run_exit),
        "FAKE_DOCKER_RUN_ERROR": run_error,
    }
    done = subprocess.run(["bash", str(path)], env=env, cwd=disk, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def _stub(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def fake_docker(argv: list[str]) -> int:
    """The stand-in VM's ``docker``: ``pull`` and ``run`` as the script uses them."""
    from edugraph_pipeline_tests.kit.gcp import on_own_disk, parse_docker_args

    if argv[:1] == ["pull"]:
        error = os.environ.get("FAKE_DOCKER_PULL_ERROR", "")
        if error:
            print(f"Error response from daemon: {error}", file=sys.stderr)
            return 1
        print(f"{argv[1]}: pulled (stand-in)")
        return 0
    if argv[:1] != ["run"]:
        return 0
    run_exit = int(os.environ.get("FAKE_DOCKER_RUN_EXIT") or 0)
    if run_exit:
        print(f"docker: Error response from daemon: {os.environ.get('FAKE_DOCKER_RUN_ERROR', '')}", file=sys.stderr)
        return run_exit
    _image, env, command = parse_docker_args(argv[1:])
    disk = Path(os.environ["FAKE_VM_DISK"])
    container_env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO_ROOT),
        "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"],
        "HOME": str(disk / "container-home"),
    }
    for name, value in env.items():  # `-e NAME` alone: the value in the script's environment
        if value is not None or name in os.environ:
            container_env[name] = value if value is not None else os.environ[name]
    return subprocess.run(on_own_disk(command, disk / "container"), env=container_env, cwd=REPO_ROOT).returncode
