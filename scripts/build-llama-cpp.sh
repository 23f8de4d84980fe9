#!/usr/bin/env bash
# Build the llama.cpp pieces the `gguf_model` asset needs, once, into a pinned-version cache folder.
#
#   scripts/build-llama-cpp.sh            # build (no-op when the cache is complete)
#   scripts/build-llama-cpp.sh --force    # rebuild
#   scripts/build-llama-cpp.sh --print-dir
#
# Where:   $EDUGRAPH_LLAMA_CPP_DIR, default ${XDG_CACHE_HOME:-~/.cache}/edugraph/llama.cpp/<version>
# Version: $EDUGRAPH_LLAMA_CPP_VERSION, default below (the llama-cpp-python release whose vendored
#          llama.cpp converts Qwen3-VL, including `--mmproj`).
# Jobs:    $EDUGRAPH_LLAMA_CPP_JOBS, default 2.  Native CPU flags: $EDUGRAPH_LLAMA_CPP_NATIVE (OFF, see below).
# Extra:   $EDUGRAPH_LLAMA_CPP_CMAKE_ARGS, appended to the CMake configure line.
#
# One CMake build of the vendored llama.cpp serves everything:
#   bin/llama-quantize, bin/llama-mtmd-cli       the quantizer and the multimodal CLI
#   bin/llama-server                             llama.cpp's own OpenAI-compatible server (what upstream deploys;
#                                                built without its web UI, which would be downloaded)
#   src/llama_cpp/lib/lib{llama,ggml*,mtmd}.so   the shared libraries, copied into the sdist's own
#                                                `llama_cpp` package, which is then importable with
#                                                PYTHONPATH=<dir>/src (pure Python + ctypes), so pip
#                                                does not compile llama.cpp a second time
#   src/vendor/llama.cpp/convert_hf_to_gguf.py   the converter, with PYTHONPATH=<dir>/src/vendor/llama.cpp/gguf-py
#   pydeps/                                      sentencepiece + diskcache (pip --target, for $PYTHON:
#                                                default ./.venv/bin/python)
# The Python package can also be installed into another environment without recompiling
# (`--pip-install PYTHON`): CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF", then this build's libraries
# copied into the installed package (its dependencies numpy, jinja2, diskcache, typing-extensions are not
# installed: --no-deps).
set -euo pipefail

VERSION="${EDUGRAPH_LLAMA_CPP_VERSION:-0.3.36}"
ROOT="${EDUGRAPH_LLAMA_CPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edugraph/llama.cpp/$VERSION}"
JOBS="${EDUGRAPH_LLAMA_CPP_JOBS:-2}"
# Native CPU flags are OFF by default: on this workplace's Xeons -march=native enables ggml's AMX kernels, which
# crash (SIGSEGV in ggml_backend_amx_mul_mat) inside the VMs. OFF builds an x86-64-v3 baseline (AVX2/FMA/F16C).
NATIVE="${EDUGRAPH_LLAMA_CPP_NATIVE:-OFF}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
FORCE=0
PIP_INTO=""

while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1 ;;
        --print-dir) echo "$ROOT"; exit 0 ;;
        --pip-install) PIP_INTO="$2"; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

MARKER="$ROOT/BUILD_COMPLETE"
SERVER_MARKER="$ROOT/SERVER_COMPLETE"
LLAMA_SRC="$ROOT/src/vendor/llama.cpp"

configure() {
    local cpu_flags=() extra=() generator=()
    if [ "$NATIVE" = OFF ] && [ "$(uname -m)" = x86_64 ]; then
        cpu_flags=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
                   -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF)
    fi
    # shellcheck disable=SC2206
    extra=(${EDUGRAPH_LLAMA_CPP_CMAKE_ARGS:-})
    if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
    # The server's web UI is neither built (npm) nor downloaded (a Hugging Face bucket): the build stays offline
    # and the server answers its API routes only.
    cmake -S "$LLAMA_SRC" -B "$ROOT/build" "${generator[@]}" \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=ON \
        -DGGML_NATIVE="$NATIVE" \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF \
        -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON "${cpu_flags[@]}" "${extra[@]}"
}

# Copies a built file into place through a temporary name and a rename: a library another process has mapped is
# never truncated under it (cp over it would be), and a reader never sees half a file.
install_file() {
    local source="$1" target_dir="$2" tmp
    if [ -L "$source" ]; then
        cp -Pf "$source" "$target_dir/"
        return
    fi
    if [ -f "$target_dir/$(basename "$source")" ] && cmp -s "$source" "$target_dir/$(basename "$source")"; then
        return
    fi
    tmp="$(mktemp "$target_dir/.install.XXXXXX")"
    cp -f "$source" "$tmp"
    chmod --reference="$source" "$tmp"
    mv -f "$tmp" "$target_dir/$(basename "$source")"
}

install_libraries() {
    find "$ROOT/build" -name 'lib*.so*' \( -type f -o -type l \) -print0 | while IFS= read -r -d '' lib; do
        install_file "$lib" "$ROOT/bin"
        install_file "$lib" "$ROOT/src/llama_cpp/lib"
    done
}

build_server() {
    # llama-server on top of an existing build: CMake reconfigures with the server on and Ninja compiles only what
    # the server adds (its sources, cpp-httplib), not llama.cpp again.
    local start end
    rm -f "$SERVER_MARKER"
    start=$(date +%s)
    configure
    cmake --build "$ROOT/build" -j "$JOBS" --target llama-server
    install_file "$ROOT/build/bin/llama-server" "$ROOT/bin"
    install_libraries
    end=$(date +%s)
    printf 'version=%s\nseconds=%s\nbuilt=%s\n' "$VERSION" "$((end - start))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        > "$SERVER_MARKER"
    echo "llama-server of llama.cpp $VERSION built in $ROOT in $((end - start)) s"
}

# One build at a time per folder (CI and a developer, two test sessions): the second waits, then finds it done.
mkdir -p "$ROOT"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/.build.lock"
    flock 9
fi

if [ "$FORCE" = 0 ] && [ -f "$MARKER" ]; then
    echo "llama.cpp $VERSION already built in $ROOT"
    if [ ! -f "$SERVER_MARKER" ] || [ ! -x "$ROOT/bin/llama-server" ]; then
        build_server
    fi
else
    rm -f "$MARKER" "$SERVER_MARKER"
    mkdir -p "$ROOT"
    start=$(date +%s)
    if [ ! -f "$ROOT/src/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
        tmp="$(mktemp -d "$ROOT/.download.XXXXXX")"
        "$PYTHON" -m pip download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$tmp"
        tar -xzf "$tmp"/llama_cpp_python-"$VERSION".tar.gz -C "$tmp"
        rm -rf "$ROOT/src"
        mv "$tmp/llama_cpp_python-$VERSION" "$ROOT/src"
        rm -rf "$tmp"
    fi
    configure
    cmake --build "$ROOT/build" -j "$JOBS" --target llama-quantize llama-mtmd-cli mtmd llama llama-server
    mkdir -p "$ROOT/bin" "$ROOT/src/llama_cpp/lib"
    for tool in llama-quantize llama-mtmd-cli llama-server; do
        install_file "$ROOT/build/bin/$tool" "$ROOT/bin"
    done
    # Shared libraries next to the binaries (their RPATH is $ORIGIN) and inside the Python package.
    install_libraries
    # Extras the converter and the binding import that the project venv lacks, kept out of the venv
    # (the converter falls back from sentencepiece to the BPE vocabulary, but imports it first).
    "$PYTHON" -m pip install --quiet --upgrade --target "$ROOT/pydeps" \
        "sentencepiece==0.2.3" "diskcache==5.6.3"
    end=$(date +%s)
    printf 'version=%s\nseconds=%s\nnative=%s\njobs=%s\nbuilt=%s\n' \
        "$VERSION" "$((end - start))" "$NATIVE" "$JOBS" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$MARKER"
    cp -f "$MARKER" "$SERVER_MARKER"
    echo "llama.cpp $VERSION built in $ROOT in $((end - start)) s"
fi

if [ -n "$PIP_INTO" ]; then
    # Pure-Python install of the binding, pointing at no compiled code of its own: the libraries
    # were copied into the package folder above, and the sdist tree is installed as is.
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$PIP_INTO" -m pip install --no-deps "$ROOT/src"
    # The wheel built that way carries no libraries: add this build's.
    pkg="$("$PIP_INTO" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("llama_cpp").origin))')"
    mkdir -p "$pkg/lib"
    cp -Pf "$ROOT/src/llama_cpp/lib/"lib*.so* "$pkg/lib/"
    echo "llama_cpp installed for $PIP_INTO in $pkg (libraries from $ROOT)"
fi
