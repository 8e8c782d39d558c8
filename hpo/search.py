"""`hpo search`: the trial loop. Each trial samples a configuration, trains it with the engine,
reports validation accuracy to the pruner every epoch and logs an MLflow child run.

No work is lost: the target is a total over all runs of the command; trials left RUNNING by a
dead process on this host are failed at start (others by Optuna's heartbeat); Ctrl-C/SIGTERM
end the running trial as FAIL (MLflow KILLED) and return an `interrupted` outcome."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from hpo import __version__
from hpo.config import DataConfig, SearchConfig, TrainConfig, flatten
from hpo.data import TrainValData, load_train_val
from hpo.errors import HpoError
from hpo.experiment import log_checkpoint, provenance, tracked_fit
from hpo.models import build_model, count_parameters
from hpo.recovery import HOST, process_token, recover_orphans, shielded, sigterm_as_interrupt
from hpo.space import Space, sample, space_to_json
from hpo.study import (
    OPTUNA_VERSION,
    Counts,
    StudyHandle,
    TrialHandle,
    TrialRow,
    create_or_resume,
    make_pruner,
    make_sampler,
    open_storage,
    store_lock,
)
from hpo.tracking import Tracker
from hpo.train import EpochMetrics, resolve_device, seed_everything

PARENT_ATTR = "mlflow_parent_run_id"


class SearchObserver(Protocol):
    """What the CLI hears while a search runs."""

    def started(self, *, study: str, done: int, target: int, resumed: bool, device: str) -> None: ...
    def trial_started(self, *, number: int, params: dict[str, Any]) -> None: ...
    def epoch(self, *, number: int, metrics: EpochMetrics, max_epochs: int) -> None: ...
    def trial_finished(self, *, row: TrialRow, counts: Counts, best: TrialRow | None) -> None: ...


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    target: int
    counts: Counts
    ran: int  # trials this call ran
    stopped: str  # "target", "timeout", "interrupted" or "already-done"
    best: TrialRow | None
    top: list[TrialRow] = field(default_factory=list)
    recovered: int = 0  # trials of dead processes failed at start


@dataclass
class _Context:
    """What every trial of one search call shares."""

    cfg: SearchConfig
    data_cfg: DataConfig
    space: Space
    data: TrainValData
    device: torch.device
    tracker: Tracker
    study: StudyHandle
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]
    observer: SearchObserver


def _parent_run(*, study: StudyHandle, tracker: Tracker, experiment_id: str, tags: dict[str, str]) -> str:
    """The study's MLflow parent run, created once and reopened by each search call."""
    run_id = study.attr(PARENT_ATTR)
    if run_id and tracker.run_status(run_id) is not None:
        tracker.reopen(run_id)
        return str(run_id)
    run_id = tracker.start_run(
        experiment_id=experiment_id, name=study.name, tags={**tags, "hpo_role": "study", "study": study.name}
    )
    tracker.log_params(run_id, {f"study.{k}": v for k, v in study.spec.items() if k != "space"})
    tracker.log_dict(run_id, study.spec, "study_spec.json")
    study.set_attr(PARENT_ATTR, run_id)
    return str(run_id)


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _start_trial(ctx: _Context, trial: TrialHandle) -> str:
    run_id = ctx.tracker.start_run(
        experiment_id=ctx.experiment_id,
        name=f"trial-{trial.number:04d}",
        parent_run_id=ctx.parent_run_id,
        tags={**ctx.tags, "trial_number": str(trial.number), "study": ctx.study.name, "state": "RUNNING"},
    )
    trial.set_attrs(mlflow_run_id=run_id, device=ctx.tags["device"])
    return run_id


def _train_trial(ctx: _Context, trial: TrialHandle, run_id: str) -> tuple[str, float, int]:
    """Train the sampled configuration; returns (Optuna state, value, epoch of the decision)."""
    chosen = sample(trial.suggest, ctx.space)
    model = build_model(chosen.model).to(ctx.device)
    ctx.tracker.log_params(
        run_id,
        {
            **flatten(model=chosen.model, optim=chosen.optim),
            "train.batch_size": chosen.batch_size,
            "train.max_epochs": ctx.cfg.epochs,
            "parameters": count_parameters(model),
        },
    )
    ctx.observer.trial_started(number=trial.number, params=trial.params)
    train = TrainConfig(
        epochs=ctx.cfg.epochs,
        batch_size=chosen.batch_size,
        seed=ctx.cfg.seed + trial.number,
        device=ctx.cfg.device,
    )

    def on_epoch(m: EpochMetrics) -> bool:
        ctx.observer.epoch(number=trial.number, metrics=m, max_epochs=ctx.cfg.epochs)
        return trial.report(m.val_accuracy, step=m.epoch)

    with ctx.study.heartbeat(trial):
        result = tracked_fit(
            tracker=ctx.tracker,
            run_id=run_id,
            model=model,
            data=ctx.data,
            optim=chosen.optim,
            train=train,
            on_epoch=on_epoch,
        )
        last = result.history[-1].epoch if result.history else 0
        if result.outcome == "completed":
            log_checkpoint(
                tracker=ctx.tracker,
                run_id=run_id,
                result=result,
                model_config=chosen.model,
                data=ctx.data,
                meta={
                    "study": ctx.study.name,
                    "trial": trial.number,
                    "dataset": ctx.data_cfg.dataset,
                    **ctx.tags,
                },
            )
    trial.set_attrs(best_epoch=result.best_epoch, epochs_run=last, outcome=result.outcome)
    ctx.tracker.set_tags(run_id, {"outcome": result.outcome, "best_epoch": result.best_epoch})
    if result.outcome == "completed":
        return "COMPLETE", result.best_val_accuracy, last
    if result.outcome == "diverged":
        trial.set_attrs(fail_reason=f"diverged: non-finite loss at epoch {last}")
    return "PRUNED", result.best_val_accuracy, last


def _finish(
    ctx: _Context,
    trial: TrialHandle,
    run_id: str,
    *,
    state: str,
    value: float = 0.0,
    epoch: int = 0,
    reason: str = "",
    run_status: str = "",
) -> None:
    """Record a trial's end in MLflow first, then in Optuna (the source of truth for counts)."""
    with shielded():
        tags = {"state": state}
        if reason:
            tags["fail_reason"] = reason
        if state == "PRUNED":
            tags["pruned_at_epoch"] = str(epoch)
            trial.set_attrs(pruned_at_epoch=epoch)
        default_status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        with contextlib.suppress(HpoError):  # the Optuna record matters more than the MLflow tag
            ctx.tracker.set_tags(run_id, tags)
            ctx.tracker.end_run(run_id, status=run_status or default_status)
        if state == "COMPLETE":
            trial.complete(value)
        elif state == "PRUNED":
            trial.prune()
        else:
            trial.fail(reason)


def _run_one(ctx: _Context) -> TrialRow | None:
    """One trial from ask to tell; None when the study's target is already reached (or claimed).
    Out-of-memory fails only this trial; an interrupt or one of our errors fails it and propagates."""
    owner = {"host": HOST, "pid": os.getpid(), "pid_token": process_token(os.getpid())}
    trial = ctx.study.claim(target=ctx.cfg.trials, attrs=owner)
    if trial is None:
        return None
    run_id = _start_trial(ctx, trial)
    try:
        state, value, epoch = _train_trial(ctx, trial, run_id)
        reason = str(trial.attr("fail_reason") or "")
        _finish(ctx, trial, run_id, state=state, value=value, epoch=epoch, reason=reason)
    except KeyboardInterrupt:
        _finish(
            ctx, trial, run_id, state="FAIL", reason="interrupted (Ctrl-C or SIGTERM)", run_status="KILLED"
        )
        raise
    except torch.OutOfMemoryError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "no detail"
        _finish(ctx, trial, run_id, state="FAIL", reason=f"out of memory on {ctx.device}: {first[:200]}")
    except BaseException as exc:
        _finish(ctx, trial, run_id, state="FAIL", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise
    finally:
        _free_memory(ctx.device)
    return ctx.study.row(trial.number)


def study_spec(*, cfg: SearchConfig, data_cfg: DataConfig, space: Space, fingerprint: str) -> dict[str, Any]:
    """What makes the study's trials comparable (checked on resume), plus how it was made."""
    return {
        "dataset": data_cfg.dataset,
        "val_size": data_cfg.val_size,
        "split_seed": data_cfg.split_seed,
        "fingerprint": fingerprint,
        "epochs": cfg.epochs,
        "space": space_to_json(space),
        "hpo_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@dataclass(frozen=True)
class PreparedStudy:
    study: StudyHandle
    tracker: Tracker
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]


def prepare_study(
    *, cfg: SearchConfig, data_cfg: DataConfig, space: Space, fingerprint: str, device: torch.device
) -> PreparedStudy:
    """Open both stores, create or resume the study (refusing incomparable settings) and its
    MLflow experiment and parent run."""
    storage = open_storage(cfg.storage)
    with store_lock(storage):  # several processes may start on a fresh store at once
        tracker = Tracker(uri=cfg.tracking_uri)
        spec = study_spec(cfg=cfg, data_cfg=data_cfg, space=space, fingerprint=fingerprint)
        study, _ = create_or_resume(
            storage,
            name=cfg.study,
            spec=spec,
            sampler=make_sampler(cfg.sampler, seed=cfg.seed),
            pruner=make_pruner(cfg.pruner, epochs=cfg.epochs),
        )
        tags = {
            **provenance(device=device, dataset=data_cfg.dataset, fingerprint=fingerprint, seed=cfg.seed),
            "optuna_version": OPTUNA_VERSION,
        }
        experiment_id = tracker.experiment(cfg.study)
        parent = _parent_run(study=study, tracker=tracker, experiment_id=experiment_id, tags=tags)
    return PreparedStudy(
        study=study, tracker=tracker, experiment_id=experiment_id, parent_run_id=parent, tags=tags
    )


def _open(
    cfg: SearchConfig, data_cfg: DataConfig, space: Space, observer: SearchObserver, worker: int
) -> _Context:
    device = resolve_device(cfg.device)
    seed_everything(seed=cfg.seed, deterministic=False, device=device)
    open_storage(cfg.storage)  # fail fast on a bad URL, before loading data
    data = load_train_val(data_cfg, device=device)
    p = prepare_study(cfg=cfg, data_cfg=data_cfg, space=space, fingerprint=data.fingerprint, device=device)
    # A resumed study must not replay the random start-up draws of the first call; a worker of
    # `--jobs` must not replay another worker's.
    offset = 1009 * len(p.study.rows()) + 7919 * worker
    p.study.reseed(make_sampler(cfg.sampler, seed=cfg.seed + offset))
    return _Context(
        cfg=cfg,
        data_cfg=data_cfg,
        space=space,
        data=data,
        device=device,
        tracker=p.tracker,
        study=p.study,
        experiment_id=p.experiment_id,
        parent_run_id=p.parent_run_id,
        tags=p.tags,
        observer=observer,
    )


def _record_best(ctx: _Context, row: TrialRow, best: TrialRow | None) -> None:
    if row.state == "COMPLETE" and best is not None and best.number == row.number:
        ctx.tracker.log_metrics(ctx.parent_run_id, {"best_val_accuracy": row.value or 0.0}, step=row.number)
        ctx.tracker.set_tags(
            ctx.parent_run_id, {"best_trial": row.number, "best_run_id": row.attrs.get("mlflow_run_id", "")}
        )


def run_search(
    *, cfg: SearchConfig, data_cfg: DataConfig, space: Space, observer: SearchObserver, worker: int = 0
) -> SearchOutcome:
    """Run trials until the study has `cfg.trials` finished ones, the timeout passes or the user
    interrupts. Safe to call again: it continues where the last call stopped."""
    ctx = _open(cfg, data_cfg, space, observer, worker)
    recovered = recover_orphans(study=ctx.study, tracker=ctx.tracker)
    done = ctx.study.counts().finished
    observer.started(
        study=cfg.study,
        done=done,
        target=cfg.trials,
        resumed=done > 0 or recovered > 0,
        device=ctx.tags["device"],
    )
    start, ran, stopped = time.monotonic(), 0, "target"
    try:
        with sigterm_as_interrupt():
            while True:
                if cfg.timeout is not None and time.monotonic() - start >= cfg.timeout:
                    stopped = "timeout"
                    break
                row = _run_one(ctx)
                if row is None:
                    stopped = "target" if ran or done < cfg.trials else "already-done"
                    break
                ran += 1
                best = ctx.study.best()
                _record_best(ctx, row, best)
                observer.trial_finished(row=row, counts=ctx.study.counts(), best=best)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        with shielded(), contextlib.suppress(HpoError):
            ctx.tracker.end_run(
                ctx.parent_run_id, status="KILLED" if stopped == "interrupted" else "FINISHED"
            )
    return outcome_of(study=ctx.study, target=cfg.trials, ran=ran, stopped=stopped, recovered=recovered)


def outcome_of(*, study: StudyHandle, target: int, ran: int, stopped: str, recovered: int) -> SearchOutcome:
    complete = sorted(study.rows(states=("COMPLETE",)), key=lambda r: -(r.value or 0.0))
    return SearchOutcome(
        study=study.name,
        target=target,
        counts=study.counts(),
        ran=ran,
        stopped=stopped,
        best=study.best(),
        top=complete[:5],
        recovered=recovered,
    )
