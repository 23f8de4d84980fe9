"""Where the llama.cpp build lives and how its pieces are run (the GGUF export's tools, the inference backend's
binding: a module of its own so that neither package imports the other for it).

`scripts/build-llama-cpp.sh` builds one pinned llama.cpp (the one vendored by the `llama-cpp-python` sdist of
`LLAMA_CPP_PYTHON_VERSION`) into a cache folder, once:

```
<dir>/BUILD_COMPLETE                          marker: version, build seconds (absent while building)
<dir>/bin/llama-quantize, llama-mtmd-cli      tools (+ their shared libraries, RPATH $ORIGIN)
<dir>/bin/llama-server                        llama.cpp's server (marker SERVER_COMPLETE; an older cache gets it built
                                              incrementally by the script)
<dir>/src/                                    the sdist; src/llama_cpp is the Python binding, its lib/ holds
                                              libllama/libggml*/libmtmd from the same build
<dir>/src/vendor/llama.cpp/convert_hf_to_gguf.py, gguf-py/   the converter and its own gguf package
<dir>/pydeps/                                 converter/binding extras missing from the project venv
                                              (sentencepiece, diskcache), installed with pip --target
```

`<dir>` is `EDUGRAPH_LLAMA_CPP_DIR`, default ``${XDG_CACHE_HOME:-~/.cache}/edugraph/llama.cpp/<version>``
(`EDUGRAPH_LLAMA_CPP_VERSION`). Everything runs in subprocesses (the converter, the quantizer, GGUF inspection)
except the binding, which the llama.cpp backend (`inference.llama_cpp_backend`) imports after putting ``src`` and
``pydeps`` on `sys.path`.

`LlamaCpp.locate()` is the one place the llama.cpp settings (build folder, version, `EDUGRAPH_GGUF_THREADS`) are
read, through `settings`; the export, the smoke test and the backend take the `LlamaCpp` it returns.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edugraph_pipeline import settings
from edugraph_pipeline.settings import LLAMA_CPP_PYTHON_VERSION

DIR_ENV = "EDUGRAPH_LLAMA_CPP_DIR"
VERSION_ENV = "EDUGRAPH_LLAMA_CPP_VERSION"
THREADS_ENV = "EDUGRAPH_GGUF_THREADS"
MARKER = "BUILD_COMPLETE"
REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-llama-cpp.sh"


class LlamaCppMissing(RuntimeError):
    """The llama.cpp build is absent or incomplete; the message says how to build it."""


class ToolError(RuntimeError):
    """A llama.cpp tool (converter, quantizer) failed; the message holds the tail of its output."""


def default_dir(cache_home: Path, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The build folder of `version` under a user cache folder (`settings.user_cache_home()`)."""
    return Path(cache_home) / "edugraph" / "llama.cpp" / version


def default_threads() -> int:
    """Half the logical CPUs (llama.cpp's own default: physical cores), used where no thread count is configured.

    Measured here (2 shared cores, load ~3.7): the tiny model decodes a token in 1.4 ms with 1 thread and in
    200 ms with 2, because ggml's threads spin-wait at every op barrier for a descheduled sibling. Threads
    beyond the free cores cost far more than they give."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class LlamaCpp:
    root: Path
    threads: int | None = None  # llama.cpp threads for inference; None: `default_threads()`

    @classmethod
    def locate(cls, root: str | os.PathLike | None = None) -> LlamaCpp:
        """The build at `root`, else the configured one (`EDUGRAPH_LLAMA_CPP_DIR`, else the default cache folder of
        `EDUGRAPH_LLAMA_CPP_VERSION`), with the configured thread count (`EDUGRAPH_GGUF_THREADS`)."""
        if root is None:
            root = settings.setting(DIR_ENV) or default_dir(settings.user_cache_home(), settings.setting(VERSION_ENV))
        threads = settings.optional_integer(THREADS_ENV)
        if threads is not None and threads < 1:
            raise ValueError(f"{THREADS_ENV}={threads}: expected at least 1 (unset: half the CPUs)")
        return cls(Path(root).expanduser().resolve(), threads)

    @property
    def thread_count(self) -> int:
        return self.threads or default_threads()

    # ---- paths ------------------------------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        return self.root / "src"

    @property
    def llama_cpp_source(self) -> Path:
        return self.source / "vendor" / "llama.cpp"

    @property
    def converter(self) -> Path:
        return self.llama_cpp_source / "convert_hf_to_gguf.py"

    @property
    def gguf_py(self) -> Path:
        return self.llama_cpp_source / "gguf-py"

    @property
    def pydeps(self) -> Path:
        return self.root / "pydeps"

    @property
    def quantize_bin(self) -> Path:
        return self.root / "bin" / "llama-quantize"

    @property
    def mtmd_cli_bin(self) -> Path:
        return self.root / "bin" / "llama-mtmd-cli"

    @property
    def server_bin(self) -> Path:
        """llama.cpp's own OpenAI-compatible server (built beside the tools; absent from builds made before it)."""
        return self.root / "bin" / "llama-server"

    @property
    def binding_lib(self) -> Path:
        return self.source / "llama_cpp" / "lib"

    # ---- state ------------------------------------------------------------------------------------------------
    def missing(self) -> list[str]:
        """What is absent (empty: usable)."""
        needed = {
            "build marker": self.root / MARKER,
            "converter": self.converter,
            "gguf-py": self.gguf_py / "gguf" / "__init__.py",
            "llama-quantize": self.quantize_bin,
            "llama-mtmd-cli": self.mtmd_cli_bin,
            "libllama": self.binding_lib / "libllama.so",
            "libmtmd": self.binding_lib / "libmtmd.so",
            "pydeps": self.pydeps / "sentencepiece",
        }
        return [f"{name} ({path})" for name, path in needed.items() if not path.exists()]

    def available(self) -> bool:
        return not self.missing()

    def require(self) -> LlamaCpp:
        missing = self.missing()
        if missing:
            raise LlamaCppMissing(
                f"llama.cpp build under {self.root} is incomplete (missing: {', '.join(missing)}): run "
                f"`bash scripts/build-llama-cpp.sh` (about 15 minutes on 2 cores) or set {DIR_ENV}"
            )
        return self

    def build_info(self) -> dict[str, str]:
        marker = self.root / MARKER
        if not marker.is_file():
            return {}
        pairs = (line.split("=", 1) for line in marker.read_text(encoding="utf-8").splitlines() if "=" in line)
        return {key: value for key, value in pairs}

    # ---- running ----------------------------------------------------------------------------------------------
    def python_env(self) -> dict[str, str]:
        """Environment for Python subprocesses: llama.cpp's own gguf-py first (the PyPI `gguf` is older)."""
        env = settings.child_environment()
        parts = [str(self.gguf_py), str(self.pydeps)]
        if env.get("PYTHONPATH"):
            parts.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(parts)
        return env

    def run(self, command: list[str], *, python: bool = False, timeout: float | None = None) -> str:
        """Run a tool; its combined output, or `ToolError` with the output's tail."""
        env = self.python_env() if python else settings.child_environment()
        result = subprocess.run(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            timeout=timeout, check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-40:])
            raise ToolError(f"{Path(command[1] if python else command[0]).name} exited {result.returncode}:\n{tail}")
        return result.stdout

    def run_python(self, args: list[str], timeout: float | None = None) -> str:
        return self.run([sys.executable, *args], python=True, timeout=timeout)

    def import_binding(self):
        """The `llama_cpp` package of this build (pure Python + ctypes over this build's libraries)."""
        self.require()
        for path in (str(self.pydeps), str(self.source)):
            if path not in sys.path:
                sys.path.insert(0, path)
        import llama_cpp

        loaded = Path(llama_cpp.__file__).resolve().parent
        if loaded != (self.source / "llama_cpp").resolve():
            raise LlamaCppMissing(
                f"another llama_cpp is already imported ({loaded}); the GGUF backend needs the one built in "
                f"{self.source}"
            )
        return llama_cpp
