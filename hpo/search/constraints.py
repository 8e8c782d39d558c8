"""What a model may be, checked before it trains: `--max-params`, `--max-flops` (one image's
forward pass) and `--max-latency-ms` (batch 1 on the CPU). Parameters and FLOPs follow from the
configuration's shapes (`hpo.core.footprint`); latency is measured on a freshly built copy (an
untrained model answers as fast as a trained one). Every trial records its figures, on the trial
and its run, so a study on a GPU still knows its models' CPU latency; a trial over a limit never
trains: it is pruned with the figure as its reason, so the sampler learns to avoid it. A trial on a
GPU also records its latency there."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hpo.config import ModelConfig, ModelLimits
from hpo.core.footprint import Footprint
from hpo.core.latency import Latency, latency
from hpo.core.models import build_model
from hpo.stores import link

CONSTRAINT_PREFIX = "constraint: "  # how the reason of a trial over a limit begins


@dataclass(frozen=True)
class Figures:
    """A configuration's size and speed, known before it trains."""

    parameters: int
    flops: int
    cpu_ms: float  # batch 1 on the CPU, median
    cpu_serving_ms: float  # hpo.core.latency.SERVING_BATCH images on the CPU, median
    cpu_threads: int
    on_device: Latency | None = None  # the same on the trial's device, when that is not the CPU

    def attrs(self) -> dict[str, float]:
        found = {
            link.PARAMETERS: self.parameters,
            link.FLOPS: self.flops,
            link.CPU_LATENCY_MS: round(self.cpu_ms, 4),
            link.CPU_SERVING_MS: round(self.cpu_serving_ms, 4),
        }
        if self.on_device is not None:
            found[link.DEVICE_LATENCY_MS] = round(self.on_device.batch1_ms, 4)
            found[link.DEVICE_SERVING_MS] = round(self.on_device.serving_ms, 4)
        return found


def measure(cfg: ModelConfig, *, size: Footprint, device: torch.device) -> Figures:
    """Parameters and FLOPs from the footprint; latency from a built copy, on the CPU and on the
    trial's `device` when that is another (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg)
    cpu = latency(model, device=torch.device("cpu"), shape=cfg.in_shape)
    return Figures(
        parameters=size.parameters,
        flops=size.flops_per_image,
        cpu_ms=cpu.batch1_ms,
        cpu_serving_ms=cpu.serving_ms,
        cpu_threads=cpu.threads,
        on_device=latency(model, device=device, shape=cfg.in_shape) if device.type != "cpu" else None,
    )


def violations(limits: ModelLimits, figures: Figures) -> dict[str, float]:
    """Each limit's excess as a fraction of it (> 0: over; <= 0: within), for Optuna's
    `set_constraint` (feasible when every value is <= 0). Only the limits set appear."""
    pairs = (
        ("params", figures.parameters, limits.max_params),
        ("flops", figures.flops, limits.max_flops),
        ("latency", figures.cpu_ms, limits.max_latency_ms),
    )
    return {name: (value - limit) / limit for name, value, limit in pairs if limit is not None}


def violation_reason(limits: ModelLimits, figures: Figures) -> str:
    """Why the configuration breaks a limit ("" when it fits): the figures over their limits."""
    over = []
    if limits.max_params is not None and figures.parameters > limits.max_params:
        over.append(f"{figures.parameters:,} parameters, over --max-params {limits.max_params:,}")
    if limits.max_flops is not None and figures.flops > limits.max_flops:
        over.append(f"{figures.flops:,} FLOPs per image, over --max-flops {limits.max_flops:,}")
    if limits.max_latency_ms is not None and figures.cpu_ms > limits.max_latency_ms:
        over.append(
            f"{figures.cpu_ms:.3f} ms per image on the CPU ({figures.cpu_threads} threads), "
            f"over --max-latency-ms {limits.max_latency_ms:g}"
        )
    return (CONSTRAINT_PREFIX + "; ".join(over) + "; never trained") if over else ""
