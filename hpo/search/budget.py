"""What trials cost, and what a budget lets them do. Before a trial trains, its seconds per epoch
are predicted: a probe of its own model (`hpo.core.cost`) times this study's calibration on this
device (the median of measured / probed over its finished trials). A trial whose predicted epoch
would take more than its share of the call's --budget left is skipped before training (pruned,
so the sampler learns to avoid it). At the start, probes of the warm starts and of random draws
from the space give the call's estimate."""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

from hpo.core.cost import choose_threads, probe_epoch_seconds
from hpo.core.data import TrainValData
from hpo.search.space import Space, TrialConfig, sample
from hpo.stores import link
from hpo.stores.optuna import TrialRow

# A trial may start when one epoch of it is predicted to take at most this share of the budget
# left: a fresh configuration must be able to show what it is worth before the budget is gone,
# and leave time for others (one CNN's first epoch ate 73% of a 20-minute budget before).
BUDGET_SHARE = 0.25
COST_PREFIX = "cost: "  # how a skipped trial's reason begins
CALIBRATION_TRIALS = 20  # the latest finished trials on this device that calibrate the probe
CALIBRATION_RANGE = (0.5, 2.0)  # measured / probed beyond this is taken as noise or load
ESTIMATE_DRAWS = 6  # random configurations probed at the start, besides the warm starts, for
ESTIMATE_S = 3.0  # no more seconds than this, nor more than ESTIMATE_SHARE of what they predict
ESTIMATE_SHARE = 0.01


@dataclass(frozen=True)
class TrialCost:
    """A trial's predicted seconds per epoch: its probe, and the probe times the calibration."""

    probe_s: float
    predicted_s: float
    calibration: float

    def attrs(self) -> dict[str, float]:
        return {
            link.PROBE_EPOCH_S: round(self.probe_s, 4),
            link.PREDICTED_EPOCH_S: round(self.predicted_s, 4),
        }


@dataclass(frozen=True)
class CallEstimate:
    """What the trials left of a call should take, before any pruning or budget."""

    trials: int
    epochs: int
    epoch_s: float  # mean predicted seconds per epoch of the configurations probed
    probed: int  # how many configurations

    @property
    def seconds(self) -> float:
        return self.trials * self.epochs * self.epoch_s


def calibration(rows: list[TrialRow], *, device: str) -> float:
    """The median of measured / probed seconds per epoch over this study's latest finished trials
    on `device` (1.0 when none has both), within CALIBRATION_RANGE."""
    ratios = [
        float(r.attrs[link.MEASURED_EPOCH_S]) / float(r.attrs[link.PROBE_EPOCH_S])
        for r in sorted(rows, key=lambda r: r.number)
        if r.attrs.get(link.DEVICE) == device
        and float(r.attrs.get(link.PROBE_EPOCH_S) or 0) > 0
        and float(r.attrs.get(link.MEASURED_EPOCH_S) or 0) > 0
    ][-CALIBRATION_TRIALS:]
    if not ratios:
        return 1.0
    low, high = CALIBRATION_RANGE
    return min(high, max(low, statistics.median(ratios)))


def trial_cost(*, chosen: TrialConfig, data: TrainValData, precision: str, factor: float) -> TrialCost:
    probe = probe_epoch_seconds(
        cfg=chosen.model, batch_size=chosen.batch_size, augment=chosen.augment, precision=precision, data=data
    )
    return TrialCost(probe_s=probe, predicted_s=probe * factor, calibration=factor)


def skip_reason(
    cost: TrialCost, *, deadline: float | None, schedule: int = 0, now: float | None = None
) -> str:
    """Why the budget cannot pay for this trial ("" when it can): its first epoch is predicted to
    take more than BUDGET_SHARE of the time left, or (`schedule` its epochs: a sampled trial once
    the study has a best) all its epochs more than the time left, when the final's turn
    (`search.trial_checks.final_turn`) would stop it mid-schedule, behind the best."""
    if deadline is None:
        return ""
    left = max(0.0, deadline - (time.time() if now is None else now))
    if cost.predicted_s > BUDGET_SHARE * left:
        return (
            f"{COST_PREFIX}one epoch is predicted to take {cost.predicted_s:.0f} s, more than "
            f"{BUDGET_SHARE:.0%} of the {left:.0f} s left of --budget; skipped before training"
        )
    if cost.predicted_s * schedule > left:
        return (
            f"{COST_PREFIX}its {schedule} epochs are predicted to take {cost.predicted_s * schedule:.0f} s, "
            f"more than the {left:.0f} s left of --budget; skipped before training"
        )
    return ""


# How far a model's measured epoch can beat what its FLOPs say, against the most FLOP-efficient
# trial of the study: FLOPs alone were 0.5x to 2.2x off between CNNs of equal FLOPs on a 2-core
# CPU (core/cost.py), so a configuration is skipped from its FLOPs only when even 2.2x faster than
# that estimate it would not fit.
FLOPS_OPTIMISM = 2.2


def flops_rate(rows: list[TrialRow], *, device: str) -> float | None:
    """The fewest seconds per epoch per forward FLOP measured by this study's trials on `device`
    (None before any has both figures)."""
    rates = [
        float(r.attrs[link.MEASURED_EPOCH_S]) / float(r.attrs[link.FLOPS])
        for r in rows
        if r.attrs.get(link.DEVICE) == device
        and float(r.attrs.get(link.MEASURED_EPOCH_S) or 0) > 0
        and float(r.attrs.get(link.FLOPS) or 0) > 0
    ]
    return min(rates) if rates else None


def flops_skip_reason(
    *, flops: int, rate: float | None, deadline: float | None, now: float | None = None
) -> str:
    """Why the budget cannot pay for a model of `flops` per image, known without building or probing
    it ("" when it may, or when nothing is known yet): seconds before a trial's latency, thread
    choice and probe, which for a large CNN on a CPU take a minute themselves."""
    if deadline is None or rate is None:
        return ""
    left = max(0.0, deadline - (time.time() if now is None else now))
    optimistic = rate * flops / FLOPS_OPTIMISM
    if optimistic <= BUDGET_SHARE * left:
        return ""
    return (
        f"{COST_PREFIX}one epoch of its {flops / 1e6:,.0f} MFLOPs per image would take at least "
        f"{optimistic:.0f} s here, more than {BUDGET_SHARE:.0%} of the {left:.0f} s left of --budget; "
        "skipped before training"
    )


def nothing_fits(
    rows: list[TrialRow], *, device: str, deadline: float | None, now: float | None = None
) -> bool:
    """Whether the --budget left is too short for even the fastest epoch measured in this study on
    `device` to pass `skip_reason`: then every trial would be skipped, and the call ends."""
    measured = [
        float(r.attrs.get(link.MEASURED_EPOCH_S) or 0) for r in rows if r.attrs.get(link.DEVICE) == device
    ]
    fastest = min((s for s in measured if s > 0), default=None)
    if deadline is None or fastest is None:
        return False
    return fastest > BUDGET_SHARE * max(0.0, deadline - (time.time() if now is None else now))


def is_skip(row: TrialRow) -> bool:
    return str(row.attrs.get(link.FAIL_REASON, "")).startswith(COST_PREFIX)


def estimate(
    *, space: Space, warm: list[dict[str, Any]], data: TrainValData, precision: str, trials: int, epochs: int
) -> CallEstimate | None:
    """Probe the warm starts still queued and a few random draws from the space (ESTIMATE_S at
    most) for the mean seconds per epoch of this call's trials. None when the space has no draw."""
    rng = random.Random(0)
    shape, classes = data.spec.shape, len(data.spec.classes)
    configs = [sample(_Fixed(params, rng), space, in_shape=shape, classes=classes) for params in warm]
    configs += [sample(_Random(rng), space, in_shape=shape, classes=classes) for _ in range(ESTIMATE_DRAWS)]
    seconds: list[float] = []
    start = time.monotonic()
    for cfg in configs:
        spent = time.monotonic() - start
        if seconds and spent > min(ESTIMATE_S, ESTIMATE_SHARE * trials * epochs * statistics.fmean(seconds)):
            break
        seconds.append(trial_cost(chosen=cfg, data=data, precision=precision, factor=1.0).probe_s)
    if not seconds or trials <= 0:
        return None
    return CallEstimate(trials=trials, epochs=epochs, epoch_s=statistics.fmean(seconds), probed=len(seconds))


class _Random:
    """Uniform draws (log-uniform where the space says log), as random search would make."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.rng.choice(list(choices))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        if log:
            return min(high, int(math.exp(self.rng.uniform(math.log(low), math.log(high + 1)))))
        return self.rng.randint(low, high)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


# An epoch this many times slower than predicted on the CPU: the machine's load changed, so the
# thread count is chosen again from the cores free now.
SLOW_FACTOR = 2.0


def threads_after_slow_epoch(*, seconds: float, predicted_s: float, current: int) -> int | None:
    """The CPU thread count to train on with after an epoch of `seconds` (None: keep `current`):
    chosen again from the free cores when the epoch ran SLOW_FACTOR x slower than predicted. This
    process's own threads are idle between epochs, so its siblings (--jobs) count as load."""
    if predicted_s <= 0 or seconds <= SLOW_FACTOR * predicted_s:
        return None
    threads = choose_threads(jobs=1)
    return threads if threads != current else None


class _Fixed(_Random):
    """A queued trial's parameters, as `space.sample` asks for them; a parameter it does not fix
    is drawn at random, as Optuna's sampler would draw it."""

    def __init__(self, params: dict[str, Any], rng: random.Random) -> None:
        super().__init__(rng)
        self.params = params

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name] if name in self.params else super().suggest_categorical(name, choices)

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        if name in self.params:
            return int(self.params[name])
        return super().suggest_int(name, low, high, log=log)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        if name in self.params:
            return float(self.params[name])
        return super().suggest_float(name, low, high, log=log)


# Allocation: with a --budget, the end of the call goes to the best configuration found, trained
# again for up to FINAL_FACTOR x --epochs (a longer schedule: the last points of accuracy on
# Fashion-MNIST come from epochs, not configurations). Planned when the time left is at most
# FINAL_START x what that training is predicted to take, and no sooner than FINAL_SHARE of the
# budget before its end (the search keeps the rest: on one CPU core a 30-epoch final of the
# warm-start CNN would otherwise take 13 of 20 minutes, queued as soon as the warm starts end);
# never for fewer epochs than the best trial had.
FINAL_FACTOR = 3
FINAL_START = 1.25
FINAL_SHARE = 0.5
FINAL_MARGIN = 1.1  # predicted seconds x this must fit the time left


@dataclass(frozen=True)
class FinalPlan:
    """The best trial's configuration, to train again for `epochs` (its parameters, queued)."""

    of: int  # the trial whose configuration it is
    epochs: int
    params: dict[str, Any]


def plan_final(
    *, best: TrialRow | None, epochs: int, left_s: float, budget_s: float, now: bool = False
) -> FinalPlan | None:
    """The final training of `best` once the --budget left (`left_s` of `budget_s`) is about what
    it needs and at most FINAL_SHARE of the budget, or at once with `now` (None: not yet, or it
    cannot pay for more epochs than the best trial had)."""
    if best is None or best.attrs.get(link.FINAL_OF) is not None:
        return None  # the best is a final training already: the plan was carried out
    epoch_s = float(best.attrs.get(link.MEASURED_EPOCH_S) or 0.0)
    if epoch_s <= 0:
        return None
    want = FINAL_FACTOR * epochs
    if not now and left_s > min(FINAL_START * want * epoch_s * FINAL_MARGIN, FINAL_SHARE * budget_s):
        return None  # time enough to explore first
    affordable = min(want, int(left_s / (epoch_s * FINAL_MARGIN)))
    if affordable <= int(best.attrs.get(link.EPOCHS_RUN) or epochs):
        return None
    return FinalPlan(of=best.number, epochs=affordable, params=dict(best.params))
