"""Where a training stage runs and whether it quantizes: the rule, decided once per stage, never silently.

* ``EDUGRAPH_DEVICE=auto`` (default): CUDA when torch sees a device. Without one only the ``tiny`` profile trains
  on the CPU; any other profile fails at once naming what is missing (a 4B in fp32 on a VM's CPUs would run
  into the 24 h limit instead of failing).
* ``cuda``: CUDA or an error.
* ``cpu``: the CPU for any profile, on purpose (tests, debugging); 4-bit is off (bitsandbytes' NF4 training is
  a CUDA path) and the metrics record why.
* QLoRA requested (the profile's ``quantize_4bit``) on CUDA without an importable bitsandbytes fails: a bf16
  LoRA of an 8B does not fit the 24 GB GPU the profile was sized for.

`choose_placement` is the rule as a pure function of the facts; `placement_for` gathers the facts from torch and
bitsandbytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edugraph_pipeline.training.profiles import DEVICE_ENV, DEVICES, TINY, StageConfig


class PlacementError(RuntimeError):
    """The stage cannot run as configured (no CUDA, no bitsandbytes): nothing was trained."""


@dataclass(frozen=True)
class Placement:
    device: str  # "cuda" or "cpu"
    quantize_4bit: bool
    reason: str  # why, in words (recorded in the stage's metrics)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    cuda_available: bool
    torch_version: str
    torch_cuda: str | None  # the CUDA version torch was built for (None: a CPU-only build)
    bitsandbytes_error: str | None  # None: importable


def choose_placement(requested: str, profile: str, quantize_4bit: bool, facts: Facts) -> Placement:
    if requested not in DEVICES:
        raise PlacementError(f"{DEVICE_ENV}={requested!r}: expected one of {DEVICES}")
    if requested == "cpu":
        why = f"{DEVICE_ENV}=cpu"
        if quantize_4bit:
            why += ": 4-bit quantization is off (QLoRA needs CUDA), training in fp32"
        return Placement("cpu", False, why)
    if not facts.cuda_available:
        if requested == "auto" and profile == TINY:
            return Placement("cpu", False, "no CUDA device: the tiny profile trains on the CPU")
        build = (
            f"this torch {facts.torch_version} is a CPU-only build"
            if facts.torch_cuda is None
            else f"torch {facts.torch_version} (CUDA {facts.torch_cuda}) sees no CUDA device: is the NVIDIA "
            f"driver installed and loaded (nvidia-smi), and is it new enough for CUDA {facts.torch_cuda}?"
        )
        wanted = f"{DEVICE_ENV}=cuda" if requested == "cuda" else f"profile {profile!r}"
        raise PlacementError(
            f"{wanted} trains on a CUDA GPU, but {build} Set {DEVICE_ENV}=cpu to train on the CPU on purpose "
            f"(slow; for tests)."
        )
    if quantize_4bit and facts.bitsandbytes_error is not None:
        raise PlacementError(
            f"profile {profile!r} trains with QLoRA (4-bit NF4) but bitsandbytes is not usable: "
            f"{facts.bitsandbytes_error}. Install the bitsandbytes pinned in requirements.lock (the trainer image "
            f"has it)."
        )
    return Placement("cuda", quantize_4bit, "CUDA" + (" with 4-bit NF4 (QLoRA)" if quantize_4bit else ", bf16"))


def current_facts(need_bitsandbytes: bool) -> Facts:
    import torch

    cuda = torch.cuda.is_available()
    error = None
    if need_bitsandbytes and cuda:
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:  # ImportError, or a CUDA-library mismatch raised while loading its kernels
            error = f"{type(exc).__name__}: {exc}"
    return Facts(cuda, torch.__version__, torch.version.cuda, error)


def placement_for(cfg: StageConfig) -> Placement:
    return choose_placement(cfg.device, cfg.profile, cfg.quantize_4bit, current_facts(cfg.quantize_4bit))
