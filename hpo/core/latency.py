"""How long a model takes to answer on the CPU, measured the honest way: eval mode under
`inference_mode`, a few warm-up calls (allocations, oneDNN's kernel choice), then the median of
repeated calls, at batch 1 (one request) and at a serving batch; the thread count is part of the
figure. Known before training: an untrained model answers as fast as the trained one."""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

SERVING_BATCH = 64  # images per call of a batch-serving endpoint
WARMUP = 2  # untimed calls first: allocations, oneDNN's kernel choice
# Calls timed per batch size: every trial is measured, so a large CNN's batch-64 calls (~60 ms
# each on a 2-core CPU) are kept few.
REPEATS = {1: 20, SERVING_BATCH: 3}


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per call, at batch 1 and at SERVING_BATCH."""

    batch1_ms: float
    serving_ms: float
    threads: int


def latency(model: nn.Module, *, device: torch.device, shape: tuple[int, int, int]) -> Latency:
    """Measure a copy of `model`, which takes (C, H, W) = `shape` images, on `device` with this
    process's CPU threads (the model itself stays where and as it was)."""
    copied = copy.deepcopy(model).to(device).eval()
    figures = {
        batch: _median_ms(copied, batch=batch, repeats=n, device=device, shape=shape)
        for batch, n in REPEATS.items()
    }
    return Latency(batch1_ms=figures[1], serving_ms=figures[SERVING_BATCH], threads=torch.get_num_threads())


@torch.inference_mode()
def _median_ms(
    model: nn.Module, *, batch: int, repeats: int, device: torch.device, shape: tuple[int, int, int]
) -> float:
    x = torch.randn(batch, *shape, device=device)  # values do not change the time
    times = []
    for i in range(WARMUP + repeats):
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the call is timed to its answer, not to its launch
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
