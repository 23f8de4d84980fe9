"""``python -m edugraph_pipeline.gguf.build [--force] [--print-dir] [--check]``: build (once) or locate llama.cpp.

A thin front of `scripts/build-llama-cpp.sh` (which does the work: pinned sdist download, one CMake build,
converter extras); `--check` only reports whether the build is complete.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from edugraph_pipeline import settings
from edugraph_pipeline.llama_cpp_build import BUILD_SCRIPT, DIR_ENV, LlamaCpp


def build(force: bool = False, root: str | None = None) -> LlamaCpp:
    llama = LlamaCpp.locate(root)
    if llama.available() and not force:
        return llama
    env = settings.child_environment(**{DIR_ENV: str(llama.root)})
    env.setdefault("PYTHON", sys.executable)  # the script's own PYTHON, if the caller set one, wins
    subprocess.run(["bash", str(BUILD_SCRIPT), *(["--force"] if force else [])], env=env, check=True)
    return llama.require()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edugraph_pipeline.gguf.build", description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when the build is complete")
    parser.add_argument("--print-dir", action="store_true", help="print the build folder and exit")
    parser.add_argument("--check", action="store_true", help="exit 0 when the build is complete, 1 otherwise")
    parser.add_argument("--dir", default=None, help=f"build folder (default: ${DIR_ENV} or the cache folder)")
    args = parser.parse_args(argv)
    llama = LlamaCpp.locate(args.dir)
    if args.print_dir:
        print(llama.root)
        return 0
    if args.check:
        missing = llama.missing()
        print(f"{llama.root}: " + ("complete " + str(llama.build_info()) if not missing else "missing " + ", ".join(missing)))
        return 0 if not missing else 1
    build(args.force, args.dir)
    print(llama.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
