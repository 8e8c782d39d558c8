"""Which device a run trains on and how: `auto` resolved to the best one present, seeds for
reproducible kernels, whether the precision can run there, and the device as runs record it."""

from __future__ import annotations

import os

import torch

from hpo.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise DeviceError(
                f"device {name!r} is not available ({count} CUDA devices): use --device cpu or auto"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' is not available on this machine: use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def seed_everything(*, seed: int, deterministic: bool, device: torch.device) -> None:
    torch.manual_seed(seed)
    if device.type == "cuda":
        # TF32 matmuls: ~free accuracy-wise for these nets, several times faster on Ampere+.
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
        torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def check_precision(device: torch.device, precision: str, *, fix: str = "use --precision fp32") -> None:
    """Autocast's bfloat16 runs on the CPU and CUDA; the commands check this up front."""
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--precision bf16 runs on cpu and cuda, not {device.type}: {fix}")


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
