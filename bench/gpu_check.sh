#!/usr/bin/env bash
# The production-shape GPU check in one command (< 8 min on an H100/H200-class GPU): the driver first, then
# bench/gpu_check.py (full-depth Qwen3-VL-4B shape, random weights: bf16 LoRA and QLoRA step time, tokens/s, MFU,
# peak memory at the 4b profile's batch; classify latency). Figures go to stdout and to $OUT/gpu_check.json
# (or ./gpu_check.json).
#
#   bash bench/gpu_check.sh                # on the GPU machine, from the repository root or anywhere
#   bash bench/gpu_check.sh --tiny         # the same Python on the CPU, cut to 1+1 layers (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
RESULT="${OUT:-.}/gpu_check.json"
if [[ " $* " != *" --tiny "* ]]; then
    if ! nvidia-smi; then
        echo "gpu_check: nvidia-smi failed: no usable NVIDIA driver on this machine" >&2
        exit 2
    fi
    "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else
        f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: driver too old for it?")'
fi
exec timeout 460 "$PYTHON" bench/gpu_check.py --out "$RESULT" "$@"
