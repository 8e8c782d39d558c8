"""What a model costs to train here, known before it trains: `probe_epoch_seconds` times a few
training steps of the configuration itself and scales them to an epoch. And how many CPU threads
to train with: as many as there are cores that other processes leave free, or one for a model that
trains faster on one.

Why free cores: PyTorch starts one compute thread per core, and every step waits for the slowest.
With one core busy elsewhere, two threads on a 2-core CPU made a batch-64 MLP epoch 4.3x slower,
29x under heavier load, where one thread on the free core costs at most 2x."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hpo.config import ModelConfig
from hpo.core.augment import augment_batch
from hpo.core.data import TrainValData
from hpo.core.engine import cpu_memory_format
from hpo.core.models import build_model

# Evaluation is a forward pass only: about a third of a training step's work per image.
TRAIN_PASSES = 3
PROBE_STEPS = 3  # timed steps, after one untimed (allocations, kernel choice)...
PROBE_SHARE = 10  # ...at most one per this many steps of an epoch (a tiny dataset's epoch is a few)


def probe_epoch_seconds(
    *, cfg: ModelConfig, batch_size: int, augment: str, precision: str, data: TrainValData
) -> float:
    """Seconds one epoch of `cfg` should take here: a few timed training steps of the model itself
    at its batch size (a fraction of a percent of an epoch), times the epoch's steps, plus the
    augmentation's cost and the validation pass. A model of FLOPs alone was tried first: on a 2-core
    CPU it was 0.5x to 2.2x off between CNNs of the same FLOPs (memory-bound batch norm and pooling
    on narrow layers, fixed costs per layer), where this probe was within 25% (benchmarks/)."""
    x, y = data.train.x, data.train.y
    steps = math.ceil(len(data.train) / batch_size)
    step = _step_seconds(cfg, x=x, y=y, batch_size=batch_size, precision=precision, timed=_timed(steps))
    per_image = step / min(batch_size, len(x))
    augment_s = _augment_seconds(x, kind=augment) if augment != "none" else 0.0
    return steps * step + len(data.train) * augment_s + len(data.val) * per_image / TRAIN_PASSES


def _timed(steps: int) -> int:
    """How many of an epoch's `steps` a probe times: PROBE_STEPS, at most one per PROBE_SHARE."""
    return min(PROBE_STEPS, max(1, steps // PROBE_SHARE))


def _augment_seconds(x: torch.Tensor, *, kind: str, batch: int = 256) -> float:
    """Seconds per image that augmentation of `kind` adds to training (median of a few batches)."""
    xb, generator = x[:batch], torch.Generator(device=x.device).manual_seed(0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        augment_batch(xb, kind=kind, background=0.0, generator=generator).sum().item()
        times.append(time.perf_counter() - start)
    return min(times[1:]) / len(xb)


def _step_seconds(
    cfg: ModelConfig, *, x: torch.Tensor, y: torch.Tensor, batch_size: int, precision: str, timed: int
) -> float:
    """Median seconds of `timed` training steps of `cfg` at `batch_size` (SGD: the optimizer's own cost
    is a small part of a step). The global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg).to(x.device)
        cpu_memory_format(model, x.device)  # as the engine trains it
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        xb, yb = x[:batch_size], y[:batch_size]
        times = []
        for step in range(timed + 1):
            start = time.perf_counter()
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(xb).float()
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # waits for the device: each step is timed whole
            if step:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def free_cores(*, sample_s: float = 0.2) -> float:
    """Cores this process may use that other processes leave idle, over the next `sample_s`
    seconds: the cores it may run on, less the busy time of everything else (/proc/stat's
    busy time minus this process's own). Without /proc: every core it may run on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        busy0, total0, own0 = _cpu_times()
        time.sleep(sample_s)
        busy1, total1, own1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float(usable)
    cores = os.cpu_count() or 1
    if total1 <= total0:
        return float(usable)
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (total1 - total0) * cores  # busy cores
    return max(0.0, usable - others)


def _cpu_times() -> tuple[float, float, float]:
    """(busy, total) jiffies of all cores from /proc/stat, and this process's own (user + system)."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return sum(fields) - idle, sum(fields), float(own[11]) + float(own[12])  # utime, stime


# A trial trains with fewer threads than the cores free when its probe says so: this much faster.
FEWER_THREADS_GAIN = 0.9


@dataclass
class CpuThreads:
    """The CPU threads one search process may use (the free cores at its start, chosen again after
    an epoch far slower than predicted); each trial trains with these or fewer (`fastest_threads`)."""

    available: int


def fastest_threads(
    *, cfg: ModelConfig, batch_size: int, precision: str, data: TrainValData, available: int
) -> int:
    """The threads `cfg` trains fastest with on this CPU: `available`, or one when a few timed
    steps on one take less than FEWER_THREADS_GAIN x those on `available`. Small convolutions gain
    nothing from a second thread and lose its synchronisation: a 7k-parameter CNN's MNIST epoch
    took 9.5 s on one thread and 13.7 s on two (benchmarks/RESULTS.md, threads per model)."""
    if available <= 1 or data.train.x.device.type != "cpu":
        return max(1, available)
    x, y = data.train.x, data.train.y
    timed = _timed(math.ceil(len(data.train) / batch_size))
    seconds = {}
    for threads in (available, 1):
        torch.set_num_threads(threads)
        seconds[threads] = _step_seconds(
            cfg, x=x, y=y, batch_size=batch_size, precision=precision, timed=timed
        )
    torch.set_num_threads(available)
    return 1 if seconds[1] < FEWER_THREADS_GAIN * seconds[available] else available


def choose_threads(*, jobs: int = 1, free: float | None = None) -> int:
    """CPU threads for one of `jobs` processes training side by side: the free cores shared
    between them, rounded to the nearest whole core, at least one."""
    free = free_cores() if free is None else free
    return max(1, int(free / jobs + 0.5))
