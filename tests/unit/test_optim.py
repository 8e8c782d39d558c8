"""hpo's optimizers and schedules take the same steps as `torch.optim` with the same settings,
and a training step does not import `torch._dynamo` (the start-up second they exist to save)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from hpo.config import OptimConfig
from hpo.core.optim import Optimizer, Schedule

CASES = [
    OptimConfig(optimizer="sgd", lr=0.1, momentum=0.0),
    OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3),
    OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, schedule="onecycle"),
    OptimConfig(optimizer="adam", lr=1e-3, weight_decay=1e-4, schedule="cosine"),
    OptimConfig(optimizer="adamw", lr=1e-3, weight_decay=0.05, schedule="exponential", gamma=0.5),
    OptimConfig(optimizer="rmsprop", lr=1e-3, momentum=0.0),
    OptimConfig(optimizer="rmsprop", lr=1e-3, momentum=0.9, weight_decay=1e-4, schedule="onecycle"),
]
EPOCHS, STEPS = 3, 4


def reference(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """What hpo built before it had its own: torch.optim, fused where torch has a kernel."""
    if cfg.optimizer == "sgd":
        kw = {"momentum": cfg.momentum, "nesterov": cfg.nesterov, "fused": True}
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
    if cfg.optimizer in ("adam", "adamw"):
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def reference_schedule(
    opt: torch.optim.Optimizer, cfg: OptimConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=EPOCHS)
    if cfg.schedule == "exponential":
        return sched.ExponentialLR(opt, gamma=cfg.gamma)
    if cfg.schedule == "onecycle":
        return sched.OneCycleLR(opt, max_lr=cfg.lr, total_steps=EPOCHS * STEPS, cycle_momentum=False)
    return None


def model(device: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).to(device)


def train(net: nn.Module, step: object, *, device: str, per_batch: bool, epoch_end: object) -> list[float]:
    """EPOCHS x STEPS steps on fixed batches; returns the learning rate each step used."""
    gen = torch.Generator().manual_seed(1)
    used = []
    for _ in range(EPOCHS):
        for _ in range(STEPS):
            x, y = (
                torch.randn(8, 1, 8, 8, generator=gen).to(device),
                torch.randint(0, 10, (8,), generator=gen),
            )
            loss = nn.functional.cross_entropy(net(x), y.to(device))
            used.append(step(loss))  # type: ignore[operator]
        epoch_end()  # type: ignore[operator]
    return used


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c.optimizer}-m{c.momentum}-{c.schedule}")
def test_steps_match_torch_optim(cfg: OptimConfig, device: str) -> None:
    per_batch = cfg.schedule == "onecycle"
    ours, theirs = model(device), model(device)
    opt = Optimizer(ours.parameters(), cfg=cfg)
    schedule = Schedule(opt, cfg, epochs=EPOCHS, steps_per_epoch=STEPS)
    ref = reference(list(theirs.parameters()), cfg)
    ref_schedule = reference_schedule(ref, cfg)

    def our_step(loss: torch.Tensor) -> float:
        lr = opt.lr
        opt.zero_grad()
        loss.backward()
        opt.step()
        if per_batch:
            schedule.step()
        return lr

    def their_step(loss: torch.Tensor) -> float:
        lr = float(ref.param_groups[0]["lr"])
        ref.zero_grad()
        loss.backward()
        ref.step()
        if per_batch and ref_schedule is not None:
            ref_schedule.step()
        return lr

    def our_epoch() -> None:
        if not per_batch:
            schedule.step()

    def their_epoch() -> None:
        if ref_schedule is not None and not per_batch:
            ref_schedule.step()

    lrs = train(ours, our_step, device=device, per_batch=per_batch, epoch_end=our_epoch)
    ref_lrs = train(theirs, their_step, device=device, per_batch=per_batch, epoch_end=their_epoch)
    assert lrs == ref_lrs  # bit for bit: a trial recorded with torch.optim retrains exactly
    if cfg.schedule != "none":
        assert len(set(lrs)) > 1  # the schedule moved
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
        assert not torch.equal(a, model(device).get_parameter(name))  # it trained


def test_parameters_without_a_gradient_are_left_alone() -> None:
    used, unused = nn.Linear(3, 2), nn.Linear(3, 2)
    before = unused.weight.detach().clone()
    opt = Optimizer([*used.parameters(), *unused.parameters()], cfg=OptimConfig(optimizer="adam"))
    used(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert torch.equal(unused.weight, before) and opt.state[2] == []
    opt.zero_grad()
    opt.step()  # no gradient at all (nothing trained since): nothing to do, and no error
    assert torch.equal(unused.weight, before)


def test_a_training_step_does_not_import_dynamo() -> None:
    probe = textwrap.dedent(
        """
        import sys, torch
        from hpo.config import OptimConfig
        from hpo.core.optim import Optimizer, Schedule
        for kind in ("sgd", "adam", "adamw", "rmsprop"):
            net = torch.nn.Linear(4, 2)
            cfg = OptimConfig(optimizer=kind, schedule="onecycle")
            opt = Optimizer(net.parameters(), cfg=cfg)
            schedule = Schedule(opt, cfg, epochs=1, steps_per_epoch=3)
            opt.zero_grad(); net(torch.ones(2, 4)).sum().backward(); opt.step(); schedule.step()
        print("torch._dynamo" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False"], done.stderr[-2000:]


@pytest.mark.parametrize(
    "cfg",
    [OptimConfig(schedule="cosine", lr=0.037), OptimConfig(schedule="exponential", lr=0.037, gamma=0.9)],
)
def test_epoch_schedules_match_torch_bit_for_bit(cfg: OptimConfig) -> None:
    """Over 10 epochs, where torch's recursive rates and the closed forms part in the last bits."""
    ours = Optimizer(nn.Linear(2, 2).parameters(), cfg=cfg)
    schedule = Schedule(ours, cfg, epochs=10, steps_per_epoch=1)
    ref = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=cfg.lr)
    kind = torch.optim.lr_scheduler
    ref_schedule = (
        kind.CosineAnnealingLR(ref, T_max=10)
        if cfg.schedule == "cosine"
        else kind.ExponentialLR(ref, gamma=cfg.gamma)
    )
    for _ in range(10):
        ref.step()
        ref_schedule.step()
        schedule.step()
        assert ours.lr == ref.param_groups[0]["lr"]
