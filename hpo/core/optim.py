"""Optimizers and learning-rate schedules, on the fused kernels that `torch.optim` itself calls
with `fused=True`, but without `torch.optim`.

Why not `torch.optim`: its `Optimizer` imports `torch._dynamo` on first use (1.0-1.1 s of every
process's start-up on a 2-core CPU, before the first batch) and wraps every `step` in Python
that costs more than the kernel for a small model (the 784-300-100-10 MLP's update on the CPU:
SGD 70 -> 37 us, Adam 185 -> 110 us). The update rules are torch's, checked step by step against
`torch.optim` in `tests/unit/test_optim.py`: SGD (momentum, Nesterov, L2 weight decay), Adam (L2
weight decay), AdamW (decoupled weight decay), RMSprop (alpha 0.99, eps 1e-8, momentum).
Schedules compute what torch's `CosineAnnealingLR`, `ExponentialLR` and `OneCycleLR` compute
with their defaults."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from hpo.config import OptimConfig

ADAM_BETAS = (0.9, 0.999)  # torch's defaults, which hpo has always trained with
ADAM_EPS = 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8


class Optimizer:
    """One optimizer over a model's parameters. `lr` is the learning rate of the next `step`; the
    schedule sets it. Parameters without a gradient (unused in the last backward) are skipped."""

    def __init__(self, params: Iterable[nn.Parameter], *, cfg: OptimConfig) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.cfg, self.lr = cfg, cfg.lr
        # State per parameter, in `self.params` order; made on the first step that needs it.
        self.state: list[list[torch.Tensor]] = [[] for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None  # the next backward writes a fresh gradient instead of adding to zeros

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:  # the fused kernels take no empty lists
            return
        fresh = {i for i in live if not self.state[i]}
        for i in fresh:
            self.state[i] = self._new_state(self.params[i])
        kind = self.cfg.optimizer
        if kind == "sgd":  # a new momentum buffer starts as the gradient: its own kernel call
            self._sgd([i for i in live if i not in fresh], first=False)
            self._sgd([i for i in live if i in fresh], first=True)
        elif kind in ("adam", "adamw"):
            self._adam(live, decoupled=kind == "adamw")
        else:
            self._rmsprop(live)

    def _new_state(self, p: torch.Tensor) -> list[torch.Tensor]:
        kind = self.cfg.optimizer
        if kind == "sgd":  # the momentum buffer, filled by the fused kernel on its first step
            return [torch.empty_like(p) if self.cfg.momentum else p.new_empty(0)]
        if kind in ("adam", "adamw"):  # first and second moments, and the kernel's step count
            step = torch.zeros((), dtype=torch.float32, device=p.device)
            return [torch.zeros_like(p), torch.zeros_like(p), step]
        momentum = torch.zeros_like(p) if self.cfg.momentum else p.new_empty(0)
        return [torch.zeros_like(p), momentum]  # RMSprop: square average, momentum buffer

    def _lists(
        self, idx: list[int], slot: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """(parameters, gradients, state `slot`) of the parameters `idx`, for one kernel call."""
        params: list[torch.Tensor] = [self.params[i] for i in idx]
        grads = [p.grad for p in params if p.grad is not None]
        return params, grads, [self.state[i][slot] for i in idx]

    def _sgd(self, idx: list[int], *, first: bool) -> None:
        if not idx:
            return
        cfg = self.cfg
        params, grads, buffers = self._lists(idx, 0)
        torch._fused_sgd_(
            params,
            grads,
            buffers if cfg.momentum else [],
            weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
            lr=self.lr,
            dampening=0.0,
            nesterov=cfg.nesterov,
            maximize=False,
            is_first_step=first and cfg.momentum > 0,
        )

    def _adam(self, idx: list[int], *, decoupled: bool) -> None:
        params, grads, firsts = self._lists(idx, 0)
        seconds, steps = [self.state[i][1] for i in idx], [self.state[i][2] for i in idx]
        torch._foreach_add_(steps, 1)  # the kernel's bias correction reads the count after it
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        kernel(
            params,
            grads,
            firsts,
            seconds,
            [],  # no amsgrad
            steps,
            amsgrad=False,
            lr=self.lr,
            beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1],
            weight_decay=self.cfg.weight_decay,
            eps=ADAM_EPS,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    def _rmsprop(self, idx: list[int]) -> None:
        """torch's (non-centered) RMSprop update, one foreach op per line over all parameters."""
        cfg = self.cfg
        params, grads, squares = self._lists(idx, 0)
        buffers = [self.state[i][1] for i in idx]
        if cfg.weight_decay:
            grads = list(torch._foreach_add(grads, params, alpha=cfg.weight_decay))
        torch._foreach_mul_(squares, RMSPROP_ALPHA)
        torch._foreach_addcmul_(squares, grads, grads, value=1 - RMSPROP_ALPHA)
        avg = torch._foreach_sqrt(squares)
        torch._foreach_add_(avg, RMSPROP_EPS)
        if cfg.momentum > 0:
            torch._foreach_mul_(buffers, cfg.momentum)
            torch._foreach_addcdiv_(buffers, grads, avg)
            torch._foreach_add_(params, buffers, alpha=-self.lr)
        else:
            torch._foreach_addcdiv_(params, grads, avg, value=-self.lr)


class Schedule:
    """The learning rate over a schedule's steps: per epoch for `cosine` and `exponential`, per
    batch for `onecycle` (`per_batch`). `step()` advances it and sets the optimizer's `lr` the way
    torch's schedulers do, recursion and all, so that the rates match theirs bit for bit (trials
    recorded before hpo had its own optimizers retrain exactly)."""

    def __init__(self, optimizer: Optimizer, cfg: OptimConfig, *, epochs: int, steps_per_epoch: int) -> None:
        self.optimizer, self.cfg, self.epochs = optimizer, cfg, epochs
        self.per_batch = cfg.schedule == "onecycle"
        self.total = max(2, epochs * steps_per_epoch)  # onecycle's steps
        self.count = 0
        if self.per_batch:
            optimizer.lr = _one_cycle(t=0, total=self.total, max_lr=cfg.lr)

    def step(self) -> None:
        self.count += 1
        lr, t, kind = self.optimizer.lr, self.count, self.cfg.schedule
        if kind == "exponential":
            lr *= self.cfg.gamma
        elif kind == "cosine":  # torch's CosineAnnealingLR(T_max=epochs): 0 at the last epoch
            lr = _cosine_step(lr, t=t, period=self.epochs, base=self.cfg.lr)
        elif kind == "onecycle":
            lr = _one_cycle(t=min(t, self.total), total=self.total, max_lr=self.cfg.lr)
        self.optimizer.lr = lr


def _cosine_step(lr: float, *, t: int, period: int, base: float) -> float:
    """Step t's rate from step t-1's, as torch's CosineAnnealingLR computes it (eta_min 0)."""
    if (t - 1 - period) % (2 * period) == 0:
        return lr + base * (1 - math.cos(math.pi / period)) / 2
    return (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period)) * lr


def _one_cycle(*, t: int, total: int, max_lr: float) -> float:
    """torch's OneCycleLR (two phases, cosine annealing, pct_start 0.3, div_factor 25,
    final_div_factor 1e4): up from max_lr/25 to max_lr over the first 30% of steps, then down
    to max_lr/25/1e4 at the last step."""
    initial, peak_step = max_lr / 25.0, 0.3 * total - 1
    if t <= peak_step:
        return _cos_anneal(initial, max_lr, t / peak_step)
    return _cos_anneal(max_lr, initial / 1e4, (t - peak_step) / (total - 1 - peak_step))


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
