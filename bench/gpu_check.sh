#!/usr/bin/env bash
# The production-shape GPU check in one command (< 8 min on an H100/H200-class GPU): the driver first, then
# bench/gpu_check.py (full-depth Qwen3-VL-4B shape, random weights: the memory placement's choice, the old QLoRA
# setting and bf16 at the old batch — step time, tokens/s, MFU/HFU against the data sheet and a measured matmul
# ceiling, peak allocated/reserved memory next to the placement's estimate; classify latency). Each row is
# appended to $OUT/gpu_check.jsonl (or ./gpu_check.jsonl) as it finishes, the whole report goes to
# gpu_check.json beside it, and the last line printed is a one-line summary.
#
#   bash bench/gpu_check.sh                # on the GPU machine, from the repository root or anywhere
#   bash bench/gpu_check.sh --tiny         # the same Python on the CPU, cut to 1+1 layers (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
RESULTS="${OUT:-.}"
if [[ " $* " != *" --tiny "* ]]; then
    if ! nvidia-smi; then
        echo "gpu_check: nvidia-smi failed: no usable NVIDIA driver on this machine" >&2
        exit 2
    fi
    "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else
        f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: driver too old for it?")'
fi
# The Python side skips a variant that would not finish within --budget-s (430 s); the timeout is the backstop.
exec timeout 460 "$PYTHON" bench/gpu_check.py --jsonl "$RESULTS/gpu_check.jsonl" --out "$RESULTS/gpu_check.json" "$@"
