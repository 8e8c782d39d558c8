"""What trials cost: the probe's prediction, the study's calibration, the skip of a trial the
--budget left cannot pay for (before it trains), the recorded predicted and measured seconds, the
start estimate, the thread count from the free cores, and rung pruning from the first trial."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from hpo.config import DataConfig, ModelConfig, OptimConfig
from hpo.core import cost
from hpo.core.data import TrainValData, load_train_val
from hpo.core.device import resolve_device
from hpo.core.engine import fit
from hpo.core.models import build_model
from hpo.search import budget, loop
from hpo.search.budget import CallEstimate, TrialCost, calibration, skip_reason
from hpo.search.space import DEFAULT_SPACE
from hpo.search.warm_start import long_form_reason, points_for
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import TrialRow, make_pruner
from hpo.stores.workspace import Workspace
from tests.helpers import STORE, open_study, search
from tests.synthetic import VAL_SIZE


@pytest.fixture()
def data(data_dir: Path) -> TrainValData:
    return load_train_val(DataConfig(data_dir=str(data_dir), val_size=VAL_SIZE), device=torch.device("cpu"))


def test_the_probe_predicts_an_epoch(data: TrainValData) -> None:
    """On the tiny data an epoch is milliseconds, so the bound is loose; on real data the
    benchmark (benchmarks/bench_cost.py) measures the error."""
    cfg = ModelConfig(family="cnn", channels=(8, 16), fc_width=32)
    predicted = cost.probe_epoch_seconds(cfg=cfg, batch_size=32, augment="shift", precision="fp32", data=data)
    result = fit(model=build_model(cfg), data=data, optim=OptimConfig(), epochs=2, batch_size=32, seed=0)
    measured = result.history[-1].epoch_seconds
    assert measured / 3 < predicted < 3 * measured, (predicted, measured)


def row(number: int, *, probe: float, measured: float, device: str = "cpu") -> TrialRow:
    attrs = {link.PROBE_EPOCH_S: probe, link.MEASURED_EPOCH_S: measured, link.DEVICE: device}
    return TrialRow(
        number=number, state="COMPLETE", value=0.9, params={}, attrs=attrs, seconds=1.0, started=""
    )


def test_the_calibration_is_the_median_ratio_on_this_device() -> None:
    rows = [row(0, probe=1.0, measured=1.2), row(1, probe=2.0, measured=3.0), row(2, probe=1.0, measured=1.3)]
    rows.append(row(3, probe=1.0, measured=9.0, device="cuda (H200)"))  # another device: not counted
    assert calibration(rows, device="cpu") == pytest.approx(1.3)
    assert calibration([], device="cpu") == 1.0
    assert calibration([row(0, probe=1.0, measured=50.0)], device="cpu") == budget.CALIBRATION_RANGE[1]


def test_the_budget_left_decides_whether_a_trial_may_start() -> None:
    trial = TrialCost(probe_s=50.0, predicted_s=60.0, calibration=1.2)
    assert skip_reason(trial, deadline=None) == ""
    assert skip_reason(trial, deadline=1000.0 + 240, now=1000.0) == ""  # 60 s <= a quarter of 240 s
    reason = skip_reason(trial, deadline=1000.0 + 200, now=1000.0)
    assert reason == (
        "cost: one epoch is predicted to take 60 s, more than 25% of the 200 s left of --budget; "
        "skipped before training"
    )
    # a sampled trial's 10 epochs: 600 s fit 600 s left, not 599 s
    assert skip_reason(trial, deadline=1000.0 + 600, schedule=10, now=1000.0) == ""
    assert skip_reason(trial, deadline=1000.0 + 599, schedule=10, now=1000.0) == (
        "cost: its 10 epochs are predicted to take 600 s, more than the 599 s left of --budget; "
        "skipped before training"
    )


def test_a_long_form_warm_start_waits_for_a_budget_it_fits() -> None:
    """The augmented CNN, once its 3-epoch short form completed, trains only where its epochs are
    predicted to take at most a sixth of the --budget; without a budget, or without the short form
    complete, it always trains; another warm start never meets this rule."""
    done = {"textbook-mlp", "small-cnn-quick"}
    assert long_form_reason("small-cnn-affine", schedule_s=200.0, budget_s=1200.0, completed=done) == ""
    assert long_form_reason("small-cnn-affine", schedule_s=201.0, budget_s=1200.0, completed=done) == (
        "cost: warm start 'small-cnn-affine' is predicted to take 201 s, more than 17% of the "
        "1200 s --budget, and its short form 'small-cnn-quick' completed; skipped before training"
    )
    assert long_form_reason("small-cnn-affine", schedule_s=900.0, budget_s=None, completed=done) == ""
    assert long_form_reason("small-cnn-affine", schedule_s=900.0, budget_s=1200.0, completed=set()) == ""
    assert long_form_reason("wide-mlp-shift", schedule_s=900.0, budget_s=1200.0, completed=done) == ""
    assert long_form_reason(None, schedule_s=900.0, budget_s=1200.0, completed=done) == ""


def test_a_model_whose_flops_the_budget_cannot_pay_for_is_skipped_before_it_is_built() -> None:
    """The study's most FLOP-efficient trial sets the rate (0.5 s per epoch per MFLOP here); a
    model is skipped from its FLOPs only when even FLOPS_OPTIMISM x faster it would not fit."""
    rows = [row(0, probe=1.0, measured=4.0), row(1, probe=1.0, measured=10.0)]
    rows[0].attrs[link.FLOPS], rows[1].attrs[link.FLOPS] = 8e6, 10e6  # 0.5 and 1.0 s per MFLOP
    rows.append(row(2, probe=1.0, measured=0.1, device="cuda (H200)"))  # another device: not counted
    rows[2].attrs[link.FLOPS] = 8e6
    rate = budget.flops_rate(rows, device="cpu")
    assert rate == pytest.approx(0.5e-6) and budget.flops_rate([], device="cpu") is None
    big = 647_000_000  # a 128-channel CNN of two 5x5 convs at 28x28: 323 s an epoch at that rate
    reason = budget.flops_skip_reason(flops=big, rate=rate, deadline=1050.0, now=1000.0)
    assert reason.startswith("cost: one epoch of its 647 MFLOPs per image would take at least 147 s")
    assert budget.is_skip(TrialRow(0, "PRUNED", None, {}, {link.FAIL_REASON: reason}, None, ""))
    assert budget.flops_skip_reason(flops=big, rate=rate, deadline=1000.0 + 600, now=1000.0) == ""
    assert budget.flops_skip_reason(flops=big, rate=None, deadline=1050.0, now=1000.0) == ""
    assert budget.flops_skip_reason(flops=big, rate=rate, deadline=None) == ""


def test_a_trial_the_budget_cannot_pay_for_never_trains(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every configuration is predicted at 1000 s an epoch and the budget is a minute: each trial
    is pruned before its first epoch with the reason; with no best configuration to train longer,
    END_SKIPS in a row end the call."""
    monkeypatch.setattr(budget, "probe_epoch_seconds", lambda **_: 1000.0)
    outcome = search(data_dir, trials=20, budget=60.0, warm_start=False)
    assert outcome.stopped == "budget" and outcome.ran == loop.END_SKIPS
    rows = open_study("s").rows()
    assert [r.state for r in rows] == ["PRUNED"] * loop.END_SKIPS
    for r in rows:
        assert r.attrs[link.FAIL_REASON].startswith("cost: one epoch is predicted to take 1000 s")
        assert r.curve == {} and r.attrs[link.PREDICTED_EPOCH_S] == 1000.0  # never trained


def test_when_the_budget_pays_for_nothing_the_sampler_proposes_the_best_trains_longer(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first configuration is cheap, every other one predicted at 1000 s an epoch: after three
    skips in a row the time left goes to the first one's final training at once (a call used to
    end there, a third of its budget unspent), and END_SKIPS skips after it end the call."""
    from hpo.search import trial_checks

    first: list[Any] = []

    def fake(*, chosen: Any, **_: Any) -> TrialCost:
        first.append(chosen) if not first else None
        seconds = 0.001 if chosen == first[0] else 1000.0
        return TrialCost(probe_s=seconds, predicted_s=seconds, calibration=1.0)

    monkeypatch.setattr(trial_checks, "trial_cost", fake)
    outcome = search(data_dir, trials=30, epochs=2, budget=120.0, warm_start=False)
    assert outcome.stopped == "budget"
    rows = open_study("s").rows()
    finals = [r for r in rows if r.attrs.get(link.FINAL_OF) is not None]
    assert len(finals) == 1 and finals[0].attrs[link.FINAL_OF] == 0 and finals[0].state == "COMPLETE"
    assert [budget.is_skip(r) for r in rows[1:4]] == [True] * 3 and finals[0].number == 4
    assert all(budget.is_skip(r) for r in rows[5:]) and len(rows) == 5 + loop.END_SKIPS


def test_each_trial_records_its_predicted_and_measured_seconds(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=2, epochs=2, warm_start=False)
    runs = MlflowStore()
    for r in open_study("s").rows():
        assert r.attrs[link.PREDICTED_EPOCH_S] > 0 and r.attrs[link.MEASURED_EPOCH_S] > 0
        assert r.attrs[link.THREADS] >= 1
        metrics = runs.run(link.run_id(r)).metrics
        assert metrics[link.PREDICTED_EPOCH_S] > 0 and metrics[link.MEASURED_EPOCH_S] > 0


def test_the_start_estimate_probes_the_warm_starts_and_random_draws(data: TrainValData) -> None:
    warm = list(points_for(DEFAULT_SPACE, limit=2).values())
    found = budget.estimate(space=DEFAULT_SPACE, warm=warm, data=data, precision="fp32", trials=50, epochs=10)
    assert isinstance(found, CallEstimate) and found.probed >= 1 and found.epoch_s > 0
    assert found.seconds == pytest.approx(50 * 10 * found.epoch_s)


@pytest.mark.parametrize(("free", "jobs", "threads"), [(1.9, 1, 2), (1.02, 1, 1), (0.0, 1, 1), (2.0, 2, 1)])
def test_threads_follow_the_free_cores(free: float, jobs: int, threads: int) -> None:
    assert cost.choose_threads(jobs=jobs, free=free) == threads


def test_a_busy_process_takes_its_core() -> None:
    usable = len(cost.os.sched_getaffinity(0))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        free = cost.free_cores(sample_s=0.5)
    finally:
        busy.kill()
    assert free <= usable - 0.5, free


def test_an_epoch_far_slower_than_predicted_chooses_the_threads_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(budget, "choose_threads", lambda **_: 1)
    assert budget.threads_after_slow_epoch(seconds=1.5, predicted_s=1.0, current=2) is None  # not slow
    assert budget.threads_after_slow_epoch(seconds=3.0, predicted_s=1.0, current=2) == 1
    assert budget.threads_after_slow_epoch(seconds=3.0, predicted_s=1.0, current=1) is None  # unchanged


def test_a_model_that_trains_faster_on_one_thread_gets_one(
    data: TrainValData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threads in force when each step is timed decide: one thread 30% faster -> 1; 5% -> all."""
    cfg, before = ModelConfig(hidden=(16,)), torch.get_num_threads()
    args: dict[str, Any] = {"cfg": cfg, "batch_size": 64, "precision": "fp32", "data": data}
    for one_thread_s, expected in ((0.7, 1), (0.95, 2)):
        monkeypatch.setattr(
            cost, "_step_seconds", lambda *a, s=one_thread_s, **k: s if torch.get_num_threads() == 1 else 1.0
        )
        assert cost.fastest_threads(**args, available=2) == expected
        assert torch.get_num_threads() == 2  # left at what the process may use; the caller sets it
    assert cost.fastest_threads(**args, available=1) == 1  # nothing to choose: no probe
    torch.set_num_threads(before)


def test_rungs_prune_from_the_first_trial(workdir: Path) -> None:
    """`--pruner sha`: rungs at epochs 1, 3, 9; the second trial, worse than the first at epoch 1,
    stops there (the median pruner waits for 5 finished trials)."""
    study = Workspace(storage=STORE, create=True).studies.create_or_resume(
        name="r", sampler=_sampler(), pruner=make_pruner("sha", epochs=9)
    )
    first = study.claim(target=5, attrs={}, sampler="random", seed=0)
    assert first is not None and first.report(0.9, step=1) is False
    second = study.claim(target=5, attrs={}, sampler="random", seed=0)
    assert second is not None and second.report(0.5, step=1) is True


def test_a_trial_on_another_schedule_stays_out_of_the_rungs(workdir: Path) -> None:
    """A value reported with `rungs=False` (a shorter warm start, a final training) is recorded but
    neither pruned nor filed at the rung: the next trial's 0.5 at epoch 1 is the rung's first."""
    study = Workspace(storage=STORE, create=True).studies.create_or_resume(
        name="r", sampler=_sampler(), pruner=make_pruner("sha", epochs=9)
    )
    first = study.claim(target=5, attrs={}, sampler="random", seed=0)
    assert first is not None and first.report(0.9, step=1, rungs=False) is False
    second = study.claim(target=5, attrs={}, sampler="random", seed=0)
    assert second is not None and second.report(0.5, step=1) is False
    third = study.claim(target=5, attrs={}, sampler="random", seed=0)
    assert third is not None and third.report(0.4, step=1) is True
    assert study.row(first.number).curve == {1: 0.9}


def test_the_best_is_compared_at_the_same_point_of_its_own_schedule() -> None:
    """Epoch e of a 10-epoch trial stands beside epoch round(e x 3 / 10) of a 3-epoch warm start
    (its recorded schedule), beside epoch e of a best on the study's 10, and inf past a curve."""
    from hpo.search.trial_checks import same_point

    quick = dataclasses.replace(
        best_row(), curve={1: 0.885, 2: 0.91, 3: 0.919}, attrs={link.SCHEDULE_EPOCHS: 3}
    )
    assert [same_point(quick, epoch=e, epochs=10, study_epochs=10) for e in (1, 3, 5, 10)] == [
        0.885,
        0.885,
        0.91,
        0.919,
    ]
    plain = dataclasses.replace(best_row(), curve={1: 0.8, 2: 0.84})
    assert same_point(plain, epoch=2, epochs=10, study_epochs=10) == 0.84
    assert same_point(plain, epoch=3, epochs=10, study_epochs=10) == float("inf")


def _sampler() -> Any:
    from hpo.stores.optuna import make_sampler

    return make_sampler("random", seed=0)


def best_row(*, epoch_s: float = 10.0, epochs_run: int = 10, final_of: int | None = None) -> TrialRow:
    attrs: dict[str, Any] = {link.MEASURED_EPOCH_S: epoch_s, link.EPOCHS_RUN: epochs_run}
    if final_of is not None:
        attrs[link.FINAL_OF] = final_of
    return TrialRow(
        number=4, state="COMPLETE", value=0.9, params={"x": 1}, attrs=attrs, seconds=1, started=""
    )


def test_the_final_training_waits_for_its_time_and_fits_what_is_left() -> None:
    """10 s an epoch, --epochs 10, an hour's budget: the final training wants 30 epochs (330 s
    with its margin)."""
    plan_final = functools.partial(budget.plan_final, epochs=10, budget_s=3600.0)
    assert plan_final(best=best_row(), left_s=1000.0) is None  # explore first
    plan = plan_final(best=best_row(), left_s=400.0)
    assert plan == budget.FinalPlan(of=4, epochs=30, params={"x": 1})
    short = plan_final(best=best_row(), left_s=200.0)
    assert short is not None and short.epochs == 18  # what 200 s pays for
    assert plan_final(best=best_row(), left_s=100.0) is None  # no more than it had
    assert plan_final(best=best_row(final_of=2), left_s=400.0) is None  # done
    assert plan_final(best=None, left_s=400.0) is None


def test_the_final_training_leaves_the_search_half_of_a_short_budget() -> None:
    """30 s an epoch under a 20-minute budget: a 30-epoch final (990 s) would start 5 minutes in;
    it waits for half the budget, then trains what 600 s pay for."""
    slow = best_row(epoch_s=30.0)
    assert budget.plan_final(best=slow, epochs=10, budget_s=1200.0, left_s=900.0) is None
    plan = budget.plan_final(best=slow, epochs=10, budget_s=1200.0, left_s=600.0)
    assert plan is not None and plan.epochs == 18  # 600 s / (30 s x 1.1)
    now = budget.plan_final(best=slow, epochs=10, budget_s=1200.0, left_s=900.0, now=True)
    assert now is not None and now.epochs == 27  # three skips in a row: at once


def test_a_budget_ends_with_the_best_configuration_trained_longer(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "FINAL_START", 1e9)  # plan it as soon as there is a best trial
    monkeypatch.setattr(budget, "FINAL_SHARE", 1.0)
    search(data_dir, trials=3, epochs=2, budget=120.0, warm_start=False, pruner="sha")
    rows = open_study("s").rows()
    (final,) = [r for r in rows if r.attrs.get(link.FINAL_OF) is not None]
    of = rows[final.attrs[link.FINAL_OF]]
    assert final.params == of.params and final.attrs[link.SCHEDULE_EPOCHS] == 6
    assert final.state == "COMPLETE" and sorted(final.curve) == [1, 2, 3, 4, 5, 6]  # never pruned


def test_latency_is_measured_on_a_copy_at_batch_1_and_the_serving_batch() -> None:
    from hpo.core.latency import latency

    model = build_model(ModelConfig(hidden=(32,)))
    model.train()
    found = latency(model, device=torch.device("cpu"), shape=(1, 28, 28))
    assert 0 < found.batch1_ms < found.serving_ms and found.threads == torch.get_num_threads()
    assert model.training  # the model itself is left as it was


def test_figures_hold_the_latency_on_the_trials_device_too(device: str) -> None:
    """On the CPU one figure a batch size; on a GPU (`pytest --device cuda`) its own as well."""
    from hpo.core.footprint import footprint
    from hpo.search.constraints import measure

    cfg = ModelConfig(family="cnn", channels=(8, 16), head="gap", fc_width=0)
    figures = measure(cfg, size=footprint(cfg), device=resolve_device(device))
    attrs = figures.attrs()
    assert attrs[link.CPU_LATENCY_MS] > 0 and attrs[link.PARAMETERS] == footprint(cfg).parameters
    if resolve_device(device).type == "cpu":
        assert figures.on_device is None and link.DEVICE_LATENCY_MS not in attrs
    else:
        assert attrs[link.DEVICE_LATENCY_MS] > 0 and attrs[link.DEVICE_SERVING_MS] > 0


def test_a_model_over_a_limit_never_trains(workdir: Path, data_dir: Path) -> None:
    """--max-params below every model of the space: each trial is pruned untrained with its
    figure, and Optuna holds its constraint (how far over, as a fraction of the limit)."""
    from hpo.config import ModelLimits

    outcome = search(data_dir, trials=2, warm_start=False, limits=ModelLimits(max_params=1000))
    assert outcome.counts.pruned == 2 and outcome.best is None
    for r in open_study("s").rows():
        assert r.curve == {} and r.attrs[link.PARAMETERS] > 1000 and r.attrs[link.CPU_LATENCY_MS] > 0
        assert r.attrs[link.FAIL_REASON].startswith("constraint: ")
        assert "parameters, over --max-params 1,000; never trained" in r.attrs[link.FAIL_REASON]
    trial = open_study("s").rows()[0]
    assert link.PREDICTED_EPOCH_S not in trial.attrs  # refused before its cost was probed


def test_a_model_within_its_limits_trains_and_records_its_figures(workdir: Path, data_dir: Path) -> None:
    import optuna  # the constraints are read as Optuna's samplers read them

    from hpo.config import ModelLimits

    limits = ModelLimits(max_params=10_000_000, max_flops=10**12, max_latency_ms=1000.0)
    search(data_dir, trials=1, warm_start=False, limits=limits)
    (r,) = open_study("s").rows()
    assert r.state == "COMPLETE" and r.attrs[link.FLOPS] > 0
    frozen = optuna.load_study(study_name="s", storage=STORE).trials[0]
    assert set(frozen.constraints) == {"params", "flops", "latency"} and max(frozen.constraints.values()) < 0
    metrics = MlflowStore().run(link.run_id(r)).metrics
    assert metrics[link.CPU_LATENCY_MS] > 0 and metrics[link.PARAMETERS] == r.attrs[link.PARAMETERS]


@pytest.mark.parametrize("flag", ["--max-params", "--max-flops", "--max-latency-ms"])
def test_a_limit_must_be_positive(workdir: Path, data_dir: Path, flag: str) -> None:
    from tests.helpers import assert_one_line_error, hpo

    assert_one_line_error(
        *hpo("search", "--data-dir", data_dir, flag, "0"), f"{flag} must be a positive number"
    )


def test_the_call_ends_when_even_the_fastest_epoch_measured_cannot_start() -> None:
    """The study's fastest epoch on this device took 2 s: with 8 s left it may still start (a
    quarter of them), with 7 s nothing can, and the call ends instead of skipping trial after trial."""
    rows = [best_row(epoch_s=2.0), best_row(epoch_s=30.0)]
    rows = [TrialRow(0, r.state, r.value, r.params, {**r.attrs, link.DEVICE: "cpu"}, 1, "") for r in rows]
    assert not budget.nothing_fits(rows, device="cpu", deadline=1008.0, now=1000.0)
    assert budget.nothing_fits(rows, device="cpu", deadline=1007.0, now=1000.0)
    assert not budget.nothing_fits(rows, device="cuda:0", deadline=1007.0, now=1000.0)  # none measured there
    assert not budget.nothing_fits(rows, device="cpu", deadline=None)


def test_a_sampled_trial_behind_the_best_gives_way_to_the_final_training() -> None:
    """Once the final training is due (400 s left of 1200, 10 s epochs), a sampled trial behind
    the best stops after its epoch; one ahead of it, a warm start, or one with time to spare goes
    on; so does one ahead of the best's own epoch 2 (84%) whose 8 epochs left fit a quarter of the
    time left, but not when they do not fit."""
    from types import SimpleNamespace

    from hpo.search.context import TrialContext
    from hpo.search.trial_checks import final_turn

    def best() -> TrialRow:
        return dataclasses.replace(best_row(), curve={1: 0.80, 2: 0.84, 10: 0.9})

    def turn(*, left: float, accuracy: float, sampled: bool = True, epoch_s: float = 10.0) -> str:
        study = SimpleNamespace(multi=False, best=best)
        ctx = SimpleNamespace(
            deadline=time.time() + left, study=study, cfg=SimpleNamespace(epochs=10, budget=1200.0)
        )
        ctx.final_plan = functools.partial(TrialContext.final_plan, ctx)
        metrics = SimpleNamespace(epoch=2, val_accuracy=accuracy, epoch_seconds=epoch_s)
        return final_turn(ctx, metrics, sampled=sampled, epochs=10)  # type: ignore[arg-type]

    reason = turn(left=400.0, accuracy=0.83)
    assert reason.startswith("budget: stopped after epoch 2")
    assert "trial 4's configuration (30 epochs)" in reason
    assert turn(left=400.0, accuracy=0.95) == ""  # ahead of the best: it may become the best
    assert turn(left=400.0, accuracy=0.83, sampled=False) == ""  # a warm start or a final training
    assert turn(left=1000.0, accuracy=0.83) == ""  # the search's half of the budget
    assert turn(left=400.0, accuracy=0.85) == ""  # ahead of the best at epoch 2; 80 s <= 100 s
    assert turn(left=400.0, accuracy=0.85, epoch_s=13.0).startswith("budget: stopped")  # 104 s > 100 s
