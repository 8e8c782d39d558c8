"""What is decided about a trial outside its training loop: before it trains (its figures and
limits, its predicted cost and the --budget), between epochs (the CPU threads after a slow
epoch, a multi-objective study's rung rule, the --budget's final training's turn).
`search.trial` calls these with its recorder, the only writer of the trial's records."""

from __future__ import annotations

import time
from typing import Protocol

import torch

from hpo.config import TrainConfig, as_params
from hpo.core.cost import fastest_threads
from hpo.core.engine import EpochMetrics
from hpo.core.footprint import footprint, too_large
from hpo.search.budget import (
    TrialCost,
    calibration,
    flops_rate,
    flops_skip_reason,
    skip_reason,
    threads_after_slow_epoch,
    trial_cost,
)
from hpo.search.constraints import Figures, measure, violation_reason, violations
from hpo.search.context import TrialContext
from hpo.search.pareto import RUNGS, rung_reason
from hpo.search.space import TrialConfig
from hpo.search.warm_start import long_form_reason
from hpo.stores import link
from hpo.stores.optuna import TrialHandle, TrialRow


class TrialWrites(Protocol):
    """What these checks write through: `search.trial.TrialRecorder` (which imports this module)."""

    number: int
    trial: TrialHandle
    minimized: tuple[float, ...]

    def start(self, *, params: dict[str, object], seed: int) -> None: ...
    def figures(self, figures: Figures, *, violations: dict[str, float]) -> None: ...
    def cost(self, cost: TrialCost, *, threads: int) -> None: ...
    def threads(self, threads: int) -> None: ...


def before_training(
    ctx: TrialContext, recorder: TrialWrites, *, chosen: TrialConfig, train: TrainConfig
) -> tuple[TrialCost | None, str]:
    """Record the trial's configuration and predicted cost; (its cost, "") when it may train, or
    (None or its cost, why not): too large for the device, or more than the --budget left can pay."""
    size = footprint(chosen.model)
    params: dict[str, object] = {**as_params(ctx.data_cfg, chosen.model, chosen.optim, train)}
    params |= {link.PARAMETERS: size.parameters, link.FLOPS: size.flops_per_image}
    recorder.start(params=params, seed=train.seed)
    refused = too_large(size, batch_size=train.batch_size, device=ctx.device)
    finished = ctx.study.rows(states=link.FINISHED_STATES)
    if not refused:  # what its FLOPs say, before seconds of latency, threads and probe
        rate = flops_rate(finished, device=ctx.tags[link.DEVICE])
        refused = flops_skip_reason(flops=size.flops_per_image, rate=rate, deadline=ctx.deadline)
    if not refused:  # its figures from a built copy: only once it is known to fit in memory
        figures = measure(chosen.model, size=size, device=ctx.device)
        recorder.figures(figures, violations=violations(ctx.cfg.limits, figures))
        refused = violation_reason(ctx.cfg.limits, figures)
    if refused:  # before it trains
        ctx.observer.trial_started(number=recorder.number, params=recorder.trial.params, predicted_s=None)
        return None, refused
    if ctx.device.type == "cpu":  # the cores free, or one when this model trains faster on one
        torch.set_num_threads(
            fastest_threads(
                cfg=chosen.model,
                batch_size=train.batch_size,
                precision=train.precision,
                data=ctx.data,
                available=ctx.threads.available,
            )
        )
    factor = calibration(finished, device=ctx.tags[link.DEVICE])
    cost = trial_cost(chosen=chosen, data=ctx.data, precision=train.precision, factor=factor)
    recorder.cost(cost, threads=torch.get_num_threads())
    predicted = cost.predicted_s * train.epochs
    ctx.observer.trial_started(number=recorder.number, params=recorder.trial.params, predicted_s=predicted)
    # Before any trial is complete, one cut by the deadline (complete at its best epoch) may be the
    # call's only model; after, final_turn would stop it once the final is due. A final fits already.
    sampled = is_sampled(recorder.trial) and ctx.study.best() is not None
    schedule = train.epochs if sampled else 0
    skip = skip_reason(cost, deadline=ctx.deadline, schedule=schedule)
    long_form = _long_form(recorder, finished=finished, schedule_s=predicted, budget_s=ctx.cfg.budget)
    return cost, skip or long_form


def _long_form(
    recorder: TrialWrites, *, finished: list[TrialRow], schedule_s: float, budget_s: float | None
) -> str:
    """`search.warm_start.long_form_reason` for this trial, with the warm starts complete among
    the `finished` trials (read once, before it was built)."""
    completed = {str(row.attrs.get(link.WARM_START)) for row in finished if row.state == link.COMPLETE}
    name = recorder.trial.attr(link.WARM_START)
    return long_form_reason(name, schedule_s=schedule_s, budget_s=budget_s, completed=completed)


def recheck_threads(ctx: TrialContext, recorder: TrialWrites, *, seconds: float, cost: TrialCost) -> None:
    """On the CPU, after an epoch far slower than predicted: the cores free now are what the
    process may use; this trial goes on with no more threads than those (nor more than it chose)."""
    if ctx.device.type != "cpu":
        return
    free = threads_after_slow_epoch(
        seconds=seconds, predicted_s=cost.predicted_s, current=ctx.threads.available
    )
    if free is None:
        return
    ctx.threads.available = free
    if free < torch.get_num_threads():
        torch.set_num_threads(free)
        recorder.threads(free)


def rung(ctx: TrialContext, recorder: TrialWrites, m: EpochMetrics) -> str:
    """A multi-objective trial's rung rule (`search.pareto`), unless --pruner none; "" in a
    single-objective study, whose pruner Optuna runs."""
    if not recorder.minimized or m.epoch not in RUNGS or ctx.cfg.pruner == "none":
        return ""
    return rung_reason(
        epoch=m.epoch,
        accuracy=m.val_accuracy,
        size=recorder.minimized[0],
        number=recorder.number,
        rows=ctx.study.rows(states=(link.COMPLETE, link.PRUNED, link.RUNNING)),
        attr=link.SIZE_ATTRS[ctx.cfg.objectives[1]],
    )


def is_sampled(trial: TrialHandle) -> bool:
    """Drawn by the sampler: neither a warm start nor the --budget's final training, the two that
    the early look and the final's turn never stop (they are what the others are measured by)."""
    return all(trial.attr(key) is None for key in (link.FINAL_OF, link.WARM_START))


# Of the --budget left, what a sampled trial ahead of the best at the same epoch may spend on its
# remaining epochs once the final training is due: if it ends ahead before the final is queued
# (`search.loop` queues it between trials), the final trains its configuration; else the best's,
# for a few epochs fewer.
AHEAD_SHARE = 0.25


def same_point(best: TrialRow, *, epoch: int, epochs: int, study_epochs: int) -> float:
    """The best trial's validation accuracy at the point of its own schedule (its epochs, else the
    study's) that epoch `epoch` of `epochs` is at, so both are at about the same learning rate
    (epoch 3 of 10 beside epoch 1 of a 3-epoch warm start); inf where its curve has none."""
    schedule = link.schedule_epochs(best, study_epochs=study_epochs)
    return best.curve.get(max(1, round(epoch * schedule / epochs)), float("inf"))


def final_turn(ctx: TrialContext, m: EpochMetrics, *, sampled: bool, epochs: int) -> str:
    """Why a sampled trial of `epochs` stops after this epoch: the --budget's final training of the
    best configuration is due (`search.budget.plan_final`) and this trial is behind that best ("" to
    go on); a warm start or a final training (`sampled` False: `is_sampled`) goes on. Behind means
    below the best's value, and below the best's own accuracy at this point of its schedule
    (`same_point`) or too slow to finish in AHEAD_SHARE of the time left: mid-schedule (its
    learning rate still high) a trial is compared with the best at the same point (seen: a
    sampled CNN stopped at 91.67% after epoch 7 of 10,
    against the warm start's 91.89% after 10). Without this rule a sampled CNN that passed its
    rungs could take the time that was the final's (seen: 11.6 minutes of a 20-minute budget on
    one core, and no final training)."""
    if ctx.deadline is None or ctx.study.multi or not sampled:
        return ""
    best = ctx.study.best()
    if best is None or best.value is None or m.val_accuracy >= best.value:
        return ""
    plan = ctx.final_plan(best)
    if plan is None:
        return ""
    left = ctx.deadline - time.time()
    ahead = m.val_accuracy >= same_point(best, epoch=m.epoch, epochs=epochs, study_epochs=ctx.cfg.epochs)
    if ahead and (epochs - m.epoch) * m.epoch_seconds <= AHEAD_SHARE * left:
        return ""
    return (
        f"budget: stopped after epoch {m.epoch}: the {left:.0f} s left of --budget go to the final "
        f"training of trial {best.number}'s configuration ({plan.epochs} epochs)"
    )
