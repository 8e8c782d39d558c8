"""One search trial from claim to tell: claim a trial against the study's target, sample its
configuration, train it as a `TrackedRun` (the MLflow child run) while reporting each epoch to
the pruner, and record its end in MLflow first, then in Optuna (the source of truth for counts).

Out-of-memory fails only this trial; an interrupt or any other error fails it and propagates."""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from hpo.config import NUM_CLASSES, DataConfig, SearchConfig, TrainConfig, as_params
from hpo.core.data import TrainValData
from hpo.core.engine import EpochMetrics, FitResult
from hpo.core.models import build_model, count_parameters
from hpo.errors import HpoError
from hpo.search.recovery import recover_stale
from hpo.search.space import Space, TrialConfig, describe, sample
from hpo.signals import deferred
from hpo.stores import link
from hpo.stores.mlflow import NOTE, MlflowStore
from hpo.stores.optuna import Counts, StudyHandle, TrialHandle, TrialRow
from hpo.stores.owner import host_id, host_seed, process_token
from hpo.stores.runs import TrackedRun, outcome_of

CHANCE_FACTOR = 2  # pruned at once: first-epoch validation accuracy <= 2 x 1/classes


class SearchObserver(Protocol):
    """What the CLI hears while a search runs."""

    def started(self, *, study: str, done: int, target: int, resumed: bool, device: str) -> None: ...
    def trial_started(self, *, number: int, params: dict[str, Any]) -> None: ...
    def epoch(self, *, number: int, metrics: EpochMetrics, max_epochs: int) -> None: ...
    def trial_finished(self, *, row: TrialRow, counts: Counts, best: TrialRow | None) -> None: ...


@dataclass(frozen=True)
class TrialContext:
    """What every trial run by one process of a search shares."""

    cfg: SearchConfig
    data_cfg: DataConfig
    space: Space
    data: TrainValData
    device: torch.device
    store: MlflowStore
    study: StudyHandle
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]  # provenance, on every child run
    observer: SearchObserver


@dataclass(frozen=True)
class _Trained:
    outcome: str  # a link.OUTCOMES key
    value: float  # best validation accuracy
    epoch: int  # the last epoch run
    best_epoch: int
    description: str  # space.describe of the configuration


def _release_memory(device: torch.device) -> None:
    """After an out-of-memory trial: collect what the failure's frames may still hold, and hand
    the cached GPU memory back. Other trials need neither: their model and optimizer hold no
    reference cycle, so they are freed the moment the trial returns (a test runs a search with the
    collector off to keep it so), and a full collection after each (0.29 s here: it walks every
    object of torch, MLflow and Optuna) bought nothing."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_trial(ctx: TrialContext) -> TrialRow | None:
    """One trial from ask to tell; None when the study's target is already reached (or claimed)."""
    owner = {
        link.OWNER_HOST: host_id(),
        link.OWNER_PID: os.getpid(),
        link.OWNER_TOKEN: process_token(os.getpid()),
    }
    recover_stale(study=ctx.study, store=ctx.store)
    trial = ctx.study.claim(
        target=ctx.cfg.trials, attrs=owner, sampler=ctx.cfg.sampler, seed=host_seed(ctx.cfg.seed)
    )
    if trial is None:
        return None
    run = _open_run(ctx, trial)
    release = False  # hand the cached GPU memory back: after an out-of-memory trial only
    try:
        done = _train(ctx, trial, run)
    except KeyboardInterrupt:
        _finish(trial, run, outcome="interrupted", reason="interrupted (Ctrl-C or SIGTERM)")
        raise
    except torch.OutOfMemoryError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "no detail"
        _finish(trial, run, outcome="failed", reason=f"out of memory on {ctx.device}: {first[:200]}")
        release = True  # in `finally`, once the exception no longer holds the trial's tensors
        return ctx.study.row(trial.number)
    except BaseException as exc:
        _finish(trial, run, outcome="failed", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise
    finally:
        if release:
            _release_memory(ctx.device)
    _finish_trained(trial, run, done)  # outside the try: a Ctrl-C deferred there must not re-end it
    return ctx.study.row(trial.number)


def _open_run(ctx: TrialContext, trial: TrialHandle) -> TrackedRun:
    """The trial's MLflow run, under the parent run, and its id on the trial (the link)."""
    tags = {link.TRIAL_NUMBER: str(trial.number), link.STUDY: ctx.study.name, link.ROLE: link.ROLE_TRIAL}
    run = TrackedRun(
        store=ctx.store,
        experiment_id=ctx.experiment_id,
        name=link.trial_run_name(trial.number),
        parent_run_id=ctx.parent_run_id,
        tags={**ctx.tags, **tags, link.STATE: "RUNNING"},
    )
    trial.set_attrs(
        **{link.RUN_ID: run.run_id, link.DEVICE: ctx.tags["device"], link.PRECISION: ctx.cfg.precision}
    )
    return run


def _finish_trained(trial: TrialHandle, run: TrackedRun, done: _Trained) -> None:
    reason = str(trial.attr(link.FAIL_REASON) or "")
    state = link.OUTCOMES[done.outcome][0]
    note = f"{state} {100 * done.value:.2f}% (best epoch {done.best_epoch} of {done.epoch})"
    note += f" · {done.description}" + (f" · {reason}" if reason else "")
    tags = {link.BEST_EPOCH: done.best_epoch, NOTE: note}  # the run's description in the UI
    with contextlib.suppress(HpoError):  # the trial's value as one metric: the UI sorts runs by it
        run.store.log_metrics(run.run_id, {link.TRIAL_VALUE: done.value}, step=done.epoch)
    _finish(trial, run, outcome=done.outcome, value=done.value, epoch=done.epoch, reason=reason, tags=tags)


def chance_reason(*, epoch: int, val_accuracy: float, classes: int = NUM_CLASSES) -> str:
    """Why to prune a trial at chance level after its first epoch ("" to go on): validation
    accuracy at or below CHANCE_FACTOR x 1/classes, whatever the pruner's start-up rules say."""
    limit = CHANCE_FACTOR / classes
    if epoch == 1 and val_accuracy <= limit:
        accuracy = f"{100 * val_accuracy:.1f}%"
        return f"chance level: {accuracy} validation accuracy after epoch 1 (<= {100 * limit:.0f}%)"
    return ""


def budget_reason(*, seconds: float, budget: float | None) -> str:
    """Why to stop a trial whose training has run `seconds` ("" to go on): past the search's
    --trial-timeout. Checked after each epoch, so a trial overruns it by at most one epoch."""
    if budget is not None and seconds > budget:
        return f"time budget: {seconds:.0f} s of training, past --trial-timeout {budget:g} s"
    return ""


def _train_config(ctx: TrialContext, chosen: TrialConfig, *, number: int) -> TrainConfig:
    return TrainConfig(
        epochs=ctx.cfg.epochs,
        batch_size=chosen.batch_size,
        seed=ctx.cfg.seed + number,  # the trial's own seed, whatever ran before it
        device=ctx.cfg.device,
        augment=chosen.augment,
        label_smoothing=chosen.label_smoothing,
        precision=ctx.cfg.precision,
    )


def _train(ctx: TrialContext, trial: TrialHandle, run: TrackedRun) -> _Trained:
    """Train the sampled configuration, reporting each epoch to the pruner."""
    chosen = sample(trial.suggest, ctx.space)
    train = _train_config(ctx, chosen, number=trial.number)
    torch.manual_seed(train.seed)  # weights and dropout; batch order and augmentation: fit's generator
    model = build_model(chosen.model).to(ctx.device)
    params = as_params(ctx.data_cfg, chosen.model, chosen.optim, train)
    run.log_params({**params, "parameters": count_parameters(model)})
    trial.set_attrs(**{link.SEED: train.seed})
    ctx.observer.trial_started(number=trial.number, params=trial.params)
    guard: list[str] = []  # per epoch: why to stop the trial early ("" to go on)
    epoch_seconds: list[float] = []  # of each epoch run, evaluation included

    def on_epoch(m: EpochMetrics) -> bool:
        ctx.observer.epoch(number=trial.number, metrics=m, max_epochs=ctx.cfg.epochs)
        stop = trial.report(m.val_accuracy, step=m.epoch)
        epoch_seconds.append(m.epoch_seconds)
        guard.append(
            chance_reason(epoch=m.epoch, val_accuracy=m.val_accuracy)
            or budget_reason(seconds=sum(epoch_seconds), budget=ctx.cfg.trial_timeout)
        )
        return stop or bool(guard[-1])

    with ctx.study.heartbeat(trial):
        result = run.fit(model=model, data=ctx.data, optim=chosen.optim, train=train, on_epoch=on_epoch)
        if result.outcome == "completed":
            meta = {"study": ctx.study.name, "trial": trial.number, "dataset": ctx.data_cfg.dataset}
            # No MLflow model here: exporting one takes ~1 s, more than a GPU trial's training;
            # the session logs one for the best trial when the search call ends.
            run.save_checkpoint(
                result=result,
                model_config=chosen.model,
                data=ctx.data,
                meta={**meta, **ctx.tags},
                served=False,
            )
    return _record(trial, result, reason=guard[-1] if guard else "", description=describe(chosen))


def _record(trial: TrialHandle, result: FitResult, *, reason: str, description: str) -> _Trained:
    last = result.history[-1].epoch if result.history else 0
    outcome = outcome_of(result)
    trial.set_attrs(**{link.BEST_EPOCH: result.best_epoch, link.EPOCHS_RUN: last, link.OUTCOME: outcome})
    if outcome == "diverged":
        reason = f"diverged: non-finite loss at epoch {last}"
    if reason:
        trial.set_attrs(**{link.FAIL_REASON: reason})
    return _Trained(
        outcome=outcome,
        value=result.best_val_accuracy,
        epoch=last,
        best_epoch=result.best_epoch,
        description=description,
    )


def _finish(
    trial: TrialHandle,
    run: TrackedRun,
    *,
    outcome: str,
    value: float = 0.0,
    epoch: int = 0,
    reason: str = "",
    tags: dict[str, object] | None = None,
) -> None:
    """Record a trial's end in MLflow first, then in Optuna, with SIGINT/SIGTERM deferred."""
    state = link.OUTCOMES[outcome][0]
    with deferred():  # a Ctrl-C here lands after the record is whole, and is not lost
        run_tags: dict[str, object] = {**(tags or {}), link.STATE: state}
        if reason:
            run_tags[link.FAIL_REASON] = reason
        if state == "PRUNED":
            run_tags[link.PRUNED_AT_EPOCH] = str(epoch)
            trial.set_attrs(**{link.PRUNED_AT_EPOCH: epoch})
        with contextlib.suppress(HpoError):  # the Optuna record matters more than the MLflow tag
            run.end(outcome, tags=run_tags)
        if state == "FAIL":
            trial.set_attrs(**{link.FAIL_REASON: reason})
        trial.tell(state, value)
