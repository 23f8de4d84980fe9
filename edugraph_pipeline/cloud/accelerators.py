"""The GPUs a training machine may have, under both of Google Cloud's names: Compute Engine's (``nvidia-l4``, the
`gcp` launcher's and ``EDUGRAPH_GCP_ACCELERATOR``'s) and Vertex AI's (``NVIDIA_L4``).

Training runs in bf16 on CUDA (`training/sft.py`: bf16 weights, the Trainer's ``bf16``; no fp16 loss scaling),
which needs an Ampere GPU or later. The older cards Google still offers (T4, V100, P100, P4, K80) have no bf16, so a
machine with one is refused before it is created, naming why, instead of failing on it hours later.
"""

from __future__ import annotations

ACCELERATOR_ENV = "EDUGRAPH_GCP_ACCELERATOR"
# Compute Engine name -> Vertex AI name, for every GPU with bf16.
ACCELERATORS = {
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-tesla-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100-80gb": "NVIDIA_H100_80GB",
    "nvidia-h100-mega-80gb": "NVIDIA_H100_MEGA_80GB",
    "nvidia-h200-141gb": "NVIDIA_H200_141GB",
    "nvidia-b200": "NVIDIA_B200",
}
# The same for the GPUs without bf16 (before Ampere): refused.
WITHOUT_BF16 = {
    "nvidia-tesla-t4": "NVIDIA_TESLA_T4",
    "nvidia-tesla-v100": "NVIDIA_TESLA_V100",
    "nvidia-tesla-p100": "NVIDIA_TESLA_P100",
    "nvidia-tesla-p4": "NVIDIA_TESLA_P4",
    "nvidia-tesla-k80": "NVIDIA_TESLA_K80",
}


def compute_name(accelerator: str) -> str:
    """Compute Engine's name of `accelerator` (given under either name), if training may use it; else a
    `ValueError` naming the setting and why (no bf16, or not a GPU known here)."""
    by_vertex = {v: k for k, v in {**ACCELERATORS, **WITHOUT_BF16}.items()}
    name = by_vertex.get(accelerator, accelerator)
    if name in WITHOUT_BF16:
        raise ValueError(
            f"{ACCELERATOR_ENV}={accelerator}: this GPU has no bf16, and training runs in bf16 (fp16 with loss "
            f"scaling is not implemented); use one of {', '.join(ACCELERATORS)}"
        )
    if name not in ACCELERATORS:
        raise ValueError(f"{ACCELERATOR_ENV}={accelerator}: not a training GPU known here; expected one of "
                         f"{', '.join(ACCELERATORS)} (or Vertex AI's names: {', '.join(ACCELERATORS.values())})")
    return name


def vertex_name(accelerator: str) -> str:
    """Vertex AI's name of `accelerator` (given under either name), checked like `compute_name`."""
    return ACCELERATORS[compute_name(accelerator)]
