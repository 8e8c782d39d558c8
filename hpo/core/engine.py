"""The training engine: `fit(...)` trains one model on device-resident splits and reports each
epoch to an `on_epoch` hook. It knows nothing of Optuna or MLflow.

Speed rules: batches are slices of a random permutation drawn on the device; the loss and the
number of correct predictions are accumulated on the device and read once per epoch (one host
sync); evaluation runs in large batches under `torch.inference_mode`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hpo.config import OptimConfig, TrainConfig
from hpo.core.augment import augment_batch
from hpo.core.data import Split, TrainValData
from hpo.core.device import check_precision
from hpo.core.optim import Optimizer, Schedule

# How a fit ended: every epoch ran, the epoch hook asked to stop, or the loss went non-finite.
FitOutcome = Literal["completed", "stopped", "diverged"]
EVAL_BATCH = 8192  # images per forward pass when evaluating; memory is (EVAL_BATCH, widest layer)


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's training batches
    train_accuracy: float  # 0..1
    val_loss: float
    val_accuracy: float  # 0..1
    epoch_seconds: float
    lr: float  # learning rate at the end of the epoch

    def metrics(self) -> dict[str, float]:
        values = asdict(self)
        values.pop("epoch")
        return values


@dataclass
class FitResult:
    outcome: FitOutcome
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int = 0  # 0 when no epoch finished
    best_val_accuracy: float = 0.0
    best_state: dict[str, torch.Tensor] | None = None  # copy of the best epoch's weights
    seconds: float = 0.0
    cut_at_epoch: int = 0  # the epoch a progress hook stopped mid-way (0: none)


OnEpoch = Callable[[EpochMetrics], bool]  # returns True to stop training
# Within an epoch: (batches done, batches in the epoch). Host-side counts only, so telling it
# costs no device sync; on a GPU it counts batches queued, which run a little behind. Returning
# True stops the fit at this batch (a wall-clock budget): the unfinished epoch is not counted.
OnProgress = Callable[[int, int], bool | None]
PROGRESS_S = 0.5  # at most this often, so a display or a worker's queue is never flooded


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(N, 1, 28, 28) -> (N, 10) logits in eval mode, in large batches."""
    model.eval()
    return torch.cat([model(chunk) for chunk in x.split(batch_size)])


def evaluate(model: nn.Module, split: Split) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0..1) on a split, with one host sync."""
    logits = predict_logits(model, split.x)
    loss_sum = F.cross_entropy(logits, split.y, reduction="sum")
    correct = (logits.argmax(1) == split.y).sum()
    loss, right = torch.stack([loss_sum.float(), correct.float()]).tolist()
    n = max(1, len(split))
    return loss / n, right / n


@dataclass(frozen=True)
class _Batches:
    """How an epoch draws and transforms its training batches."""

    size: int
    generator: torch.Generator  # on the data's device: order and augmentation follow the seed
    augment: str = "none"
    background: float = 0.0  # normalized value of a black pixel, for augmentation's fill
    label_smoothing: float = 0.0
    precision: str = "fp32"  # config.PRECISIONS
    on_progress: OnProgress | None = None  # told (batches done, batches) at most every PROGRESS_S


def _autocast(device: torch.device) -> torch.autocast:
    """bf16: the forward pass's matmuls and convolutions in bfloat16, the rest (and the weights,
    which the optimizer updates) in float32. On CPUs with AMX, oneDNN's bf16 convolutions make a
    CNN epoch 1.4-1.6x faster at equal validation accuracy (benchmarks/RESULTS.md); small-batch MLPs
    gain nothing there (the casts cost what the matmuls save). Evaluation stays float32: the
    recorded validation accuracy is the served model's."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _train_epoch(
    *,
    model: nn.Module,
    split: Split,
    optimizer: Optimizer,
    batches: _Batches,
    batch_schedule: Schedule | None,
) -> tuple[float, float] | None:
    """One pass over a fresh device-side permutation; returns (mean loss, accuracy), or None when
    the progress hook stopped it. Per step only the loss and the predictions are kept (no
    arithmetic): the epoch's sums are taken once at its end, which saves ~5 small kernels a step
    (launch-bound on a GPU, dispatch-bound on a CPU)."""
    model.train()
    n, device = len(split), split.x.device
    perm = torch.randperm(n, device=device, generator=batches.generator)
    bf16 = batches.precision == "bf16"
    losses: list[torch.Tensor] = []  # per step: the () mean loss
    preds: list[torch.Tensor] = []  # per step: (B,) predicted classes
    labels: list[torch.Tensor] = []  # per step: (B,) true classes
    sizes: list[int] = []
    total, report_at = math.ceil(n / batches.size), time.monotonic() + PROGRESS_S
    for idx in perm.split(batches.size):
        if idx.numel() < 2 and n > 1:  # batch norm cannot train on a single image
            continue
        xb, yb = split.x.index_select(0, idx), split.y.index_select(0, idx)
        xb = augment_batch(
            xb, kind=batches.augment, background=batches.background, generator=batches.generator
        )
        if bf16:
            with _autocast(device):
                logits = model(xb).float()  # (B, 10) back in float32 for the loss
        else:
            logits = model(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=batches.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if batch_schedule is not None:
            batch_schedule.step()
        losses.append(loss.detach())
        preds.append(logits.detach().argmax(1))
        labels.append(yb)
        sizes.append(idx.numel())
        if batches.on_progress is not None and time.monotonic() >= report_at:
            if batches.on_progress(len(sizes), total):
                return None  # cut short: this epoch has no result
            report_at = time.monotonic() + PROGRESS_S
    if not losses:  # no batch of two images: nothing trained
        return 0.0, 0.0
    loss_sum = torch.stack(losses) @ torch.tensor(sizes, dtype=torch.float32, device=device)
    correct = (torch.cat(preds) == torch.cat(labels)).sum()
    loss_total, right = torch.stack([loss_sum, correct.float()]).tolist()  # the epoch's one sync
    return loss_total / n, right / n


def cpu_memory_format(model: nn.Module, device: torch.device) -> None:
    """Channels-last weights for a CNN on the CPU, where oneDNN's convolutions then run 20-25%
    faster (one epoch: seed 001's CNN 3.53 -> 2.69 s, the warm-start CNN 26.0 -> 20.8 s). On a
    GPU this was not measured, so the layout stays as it is there."""
    if device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)  # in place: the same Parameter objects


def fit_config(
    *,
    model: nn.Module,
    data: TrainValData,
    optim: OptimConfig,
    train: TrainConfig,
    on_epoch: OnEpoch | None,
    on_progress: OnProgress | None = None,
) -> FitResult:
    """`fit` with the training settings of a `TrainConfig` (epochs, batch, seed, augmentation,
    label smoothing, precision): how a trial, `hpo train` and a reproduction train."""
    return fit(
        model=model,
        data=data,
        optim=optim,
        epochs=train.epochs,
        batch_size=train.batch_size,
        seed=train.seed,
        on_epoch=on_epoch,
        augment=train.augment,
        label_smoothing=train.label_smoothing,
        precision=train.precision,
        on_progress=on_progress,
    )


def fit(
    *,
    model: nn.Module,
    data: TrainValData,
    optim: OptimConfig,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: OnEpoch | None = None,
    augment: str = "none",
    label_smoothing: float = 0.0,
    precision: str = "fp32",
    on_progress: OnProgress | None = None,
) -> FitResult:
    """Train `model` (already on the data's device) and keep the best validation epoch."""
    device = data.train.x.device
    check_precision(device, precision)
    norm = data.normalization
    batches = _Batches(
        size=batch_size,
        generator=torch.Generator(device=device).manual_seed(seed),
        augment=augment,
        background=-norm.mean / norm.std,
        label_smoothing=label_smoothing,
        precision=precision,
        on_progress=on_progress,
    )
    cpu_memory_format(model, device)
    optimizer = Optimizer(model.parameters(), cfg=optim)
    steps = math.ceil(len(data.train) / batch_size)
    schedule = Schedule(optimizer, optim, epochs=epochs, steps_per_epoch=steps)
    result = FitResult(outcome="completed")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        trained = _train_epoch(
            model=model,
            split=data.train,
            optimizer=optimizer,
            batches=batches,
            batch_schedule=schedule if schedule.per_batch else None,
        )
        if trained is None:  # the progress hook stopped it mid-epoch; the epochs before it stand
            result.outcome, result.cut_at_epoch = "stopped", epoch
            break
        train_loss, train_acc = trained
        val_loss, val_acc = evaluate(model, data.val)
        lr = optimizer.lr
        if not schedule.per_batch:
            schedule.step()
        metrics = EpochMetrics(epoch, train_loss, train_acc, val_loss, val_acc, time.perf_counter() - t0, lr)
        result.history.append(metrics)
        diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
        if not diverged and val_acc > result.best_val_accuracy:
            result.best_epoch, result.best_val_accuracy = epoch, val_acc
            result.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        stop = on_epoch(metrics) if on_epoch is not None else False
        if diverged or stop:
            result.outcome = "diverged" if diverged else "stopped"
            break
    result.seconds = time.perf_counter() - start
    return result
