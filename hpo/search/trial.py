"""One search trial from claim to end. `TrialRecorder` is the only writer of a trial's records:
it claims the trial against the study's target, opens its MLflow child run, logs each epoch to
MLflow and reports it to the pruner, uploads the checkpoint, and writes the trial's end, a frozen
`link.TrialEnd`, to MLflow first and then to Optuna (the source of truth for counts). `run_trial`
samples the configuration and trains it between those writes.

Out-of-memory fails only this trial; an interrupt or any other error fails it and propagates."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

from hpo.config import ModelConfig, TrainConfig
from hpo.core.engine import EpochMetrics, FitResult, fit_config
from hpo.core.models import build_model
from hpo.errors import HpoError, TrialTakenError, first_line
from hpo.search import early_look
from hpo.search.budget import TrialCost
from hpo.search.constraints import Figures
from hpo.search.context import TrialContext
from hpo.search.recovery import recover_stale
from hpo.search.space import TrialConfig, describe, sample
from hpo.search.trial_checks import before_training, final_turn, is_sampled, recheck_threads, rung
from hpo.search.trial_end import budget_reason, chance_reason, trial_end
from hpo.signals import deferred
from hpo.stores import link
from hpo.stores.link import TrialEnd
from hpo.stores.mlflow import NOTE
from hpo.stores.optuna import TrialHandle, TrialRow
from hpo.stores.owner import host_id, host_seed, process_token
from hpo.stores.runs import TrackedRun


class TrialRecorder:
    """One trial across both stores: claim -> start -> epochs -> finish. Build it with `claim`."""

    def __init__(self, *, ctx: TrialContext, trial: TrialHandle, run: TrackedRun) -> None:
        self.ctx, self.trial, self.run = ctx, trial, run
        self.number = trial.number
        self.minimized: tuple[float, ...] = ()  # a multi-objective study's size objective(s)

    @classmethod
    def claim(cls, ctx: TrialContext) -> TrialRecorder | None:
        """Claim a trial against the target (None when it is reached or claimed), owned by this
        process, and open its MLflow run under the parent run, its id on the trial (the link)."""
        owner = {
            link.OWNER_HOST: host_id(),
            link.OWNER_PID: os.getpid(),
            link.OWNER_TOKEN: process_token(os.getpid()),
        }
        recover_stale(study=ctx.study, store=ctx.store)
        seed = host_seed(ctx.cfg.seed)
        trial = ctx.study.claim(target=ctx.cfg.trials, attrs=owner, sampler=ctx.cfg.sampler, seed=seed)
        if trial is None:
            return None
        tags = {link.TRIAL_NUMBER: str(trial.number), link.STUDY: ctx.study.name, link.ROLE: link.ROLE_TRIAL}
        run = TrackedRun(
            store=ctx.store,
            experiment_id=ctx.experiment_id,
            name=link.trial_run_name(trial.number),
            parent_run_id=ctx.parent_run_id,
            tags={**ctx.tags, **tags, link.STATE: link.RUNNING},
        )
        link_attrs = {
            link.RUN_ID: run.run_id,
            link.DEVICE: ctx.tags[link.DEVICE],
            link.PRECISION: ctx.cfg.precision,
        }
        trial.set_attrs(**link_attrs)
        return cls(ctx=ctx, trial=trial, run=run)

    def start(self, *, params: dict[str, object], seed: int) -> None:
        """The sampled configuration on the run (params) and the trial's own seed on the trial."""
        self.run.log_params(params)
        self.trial.set_attrs(**{link.SEED: seed})

    def cost(self, cost: TrialCost, *, threads: int) -> None:
        """Its predicted seconds per epoch (and the threads it trains with) on both records."""
        self.run.log_metrics(cost.attrs(), step=0)
        self.trial.set_attrs(**cost.attrs(), **{link.THREADS: threads})

    def figures(self, figures: Figures, *, violations: dict[str, float]) -> None:
        """Its size and CPU latency on both records, and how far over each limit it is (Optuna's
        constraints, which its samplers read)."""
        self.run.log_metrics(figures.attrs(), step=0)
        self.trial.set_attrs(**figures.attrs())
        self.minimized = tuple(figures.attrs()[link.SIZE_ATTRS[o]] for o in self.ctx.cfg.objectives[1:])
        if violations:
            self.trial.set_constraints(violations)

    def early(self, look: early_look.Look) -> None:
        """Its early look's accuracy on both records (`search.early_look`)."""
        self.run.log_metrics({link.EARLY_VAL: look.accuracy}, step=0)
        self.trial.set_attrs(**{link.EARLY_VAL: round(look.accuracy, 4)})

    def threads(self, threads: int) -> None:
        """The CPU thread count changed mid-trial: the trial records the latest."""
        self.trial.set_attrs(**{link.THREADS: threads})

    def epoch(self, metrics: EpochMetrics, *, rungs: bool = True) -> bool:
        """One epoch: its metrics on the run (one batch, step = epoch), its validation accuracy to
        the study and, when `rungs`, to the pruner. True when the pruner says stop."""
        self.run.log_metrics(metrics.metrics(), step=metrics.epoch)
        return self.trial.report(metrics.val_accuracy, step=metrics.epoch, rungs=rungs)

    @contextlib.contextmanager
    def heartbeat(self) -> Iterator[None]:
        """The trial's heartbeat while the block runs: other hosts can tell it is alive."""
        with self.ctx.study.heartbeat(self.trial):
            yield

    def checkpoint(self, *, result: FitResult, model_config: ModelConfig) -> None:
        """The best epoch's weights on the run. No MLflow model: exporting one takes ~1 s, more
        than a GPU trial's training; the session logs one for the best trial when the call ends."""
        meta = {"study": self.ctx.study.name, "trial": self.number, "dataset": self.ctx.data_cfg.dataset}
        self.run.save_checkpoint(
            result=result,
            model_config=model_config,
            data=self.ctx.data,
            meta={**meta, **self.ctx.tags},
            served=False,
        )

    def finish(self, end: TrialEnd, *, description: str = "") -> TrialRow:
        """Write the trial's end: MLflow first (its value, tags, status), then Optuna (attributes,
        state), with SIGINT/SIGTERM deferred so a Ctrl-C lands after both records are whole."""
        tags = end.run_tags()
        if end.trained:  # the run's description in the UI reads like its `hpo trials` row
            note = f"{end.state} {100 * end.value:.2f}% (best epoch {end.best_epoch} of {end.epochs_run})"
            tags[NOTE] = note + "".join(f" · {part}" for part in (description, end.reason) if part)
        with deferred():
            with contextlib.suppress(HpoError):  # the Optuna record matters more than MLflow's
                if end.trained:  # the trial's value as one metric: the UI sorts runs by it
                    values = {link.TRIAL_VALUE: end.value, link.BEST_VALUE: end.value}
                    if end.epoch_seconds > 0:
                        values[link.MEASURED_EPOCH_S] = end.epoch_seconds
                    self.run.log_metrics(values, step=end.epochs_run)
            with contextlib.suppress(HpoError):
                self.run.end(end.outcome, tags=tags)
            self.trial.set_attrs(**end.trial_attrs())
            self.trial.tell(end.state, end.value, minimized=self.minimized)
            if end.outcome == "interrupted":  # its configuration runs again on resume, warm start or not
                attrs = {link.RETRY_OF: self.number}
                self.ctx.study.requeue(self.number, attrs=attrs, carry=link.RETRY_CARRIES)
        return self.ctx.study.row(self.number)


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
    """One trial from claim to end; None when the study's target is already reached (or claimed)."""
    recorder = TrialRecorder.claim(ctx)
    if recorder is None:
        return None
    release = False  # hand the cached GPU memory back: after an out-of-memory trial only
    try:
        end, description = _train(ctx, recorder)
    except TrialTakenError as exc:
        return _taken(recorder, exc)
    except KeyboardInterrupt:
        recorder.finish(TrialEnd(outcome="interrupted", reason="interrupted (Ctrl-C or SIGTERM)"))
        raise
    except torch.OutOfMemoryError as exc:
        reason = f"out of memory on {ctx.device}: {first_line(exc, limit=200)}"
        release = True  # in `finally`, once the exception no longer holds the trial's tensors
        return recorder.finish(TrialEnd(outcome="failed", reason=reason))
    except BaseException as exc:
        recorder.finish(TrialEnd(outcome="failed", reason=f"{type(exc).__name__}: {str(exc)[:300]}"))
        raise
    finally:
        if release:
            _release_memory(ctx.device)
    # Outside the try: a Ctrl-C deferred while the end is written must not end the trial again.
    try:
        return recorder.finish(end, description=description)
    except TrialTakenError as exc:
        return _taken(recorder, exc)


def _taken(recorder: TrialRecorder, exc: TrialTakenError) -> TrialRow:
    """Another process failed this trial and queued it again (its heartbeat came late): its run
    ends as failed with why, and this process goes on with the next trial."""
    with contextlib.suppress(HpoError):
        recorder.run.end("failed", tags={link.FAIL_REASON: str(exc)})
    return recorder.ctx.study.row(recorder.number)


def _early_look(
    ctx: TrialContext, recorder: TrialRecorder, *, model: nn.Module, sampled: bool
) -> Callable[[int, int], str] | None:
    """The trial's early look (`search.early_look`) as a check of its first epoch's progress: why
    to prune it once the look is taken, else "". None: no early look (a multi-objective study,
    --pruner none)."""
    if ctx.study.multi or ctx.cfg.pruner == "none":
        return None
    images = early_look.subset(ctx.data.val)
    taken = False

    def check(batch: int, batches: int) -> str:
        nonlocal taken
        if taken or not early_look.due(batch=batch, batches=batches):
            return ""
        taken = True
        others = early_look.peers(ctx.study.rows(states=(link.COMPLETE, link.PRUNED, link.RUNNING)))
        look = early_look.take(model, images, batch=batch, batches=batches)
        recorder.early(look)
        return early_look.reason(look, others=others) if sampled else ""

    return check


def _train_config(ctx: TrialContext, chosen: TrialConfig, *, number: int, epochs: int) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=chosen.batch_size,
        seed=ctx.cfg.seed + number,  # the trial's own seed, whatever ran before it
        device=ctx.cfg.device,
        augment=chosen.augment,
        label_smoothing=chosen.label_smoothing,
        precision=ctx.cfg.precision,
    )


def _train(ctx: TrialContext, recorder: TrialRecorder) -> tuple[TrialEnd, str]:
    """Sample and train the trial's configuration; its end and its description."""
    spec = ctx.data.spec
    chosen = sample(recorder.trial.suggest, ctx.space, in_shape=spec.shape, classes=len(spec.classes))
    final = recorder.trial.attr(link.FINAL_OF) is not None  # the --budget's final training
    epochs = int(recorder.trial.attr(link.SCHEDULE_EPOCHS) or ctx.cfg.epochs)
    train = _train_config(ctx, chosen, number=recorder.number, epochs=epochs)
    cost, refused = before_training(ctx, recorder, chosen=chosen, train=train)
    if cost is None or refused:  # pruned before training, so the sampler learns to avoid it
        return TrialEnd(outcome="pruned", reason=refused), describe(chosen)
    torch.manual_seed(train.seed)  # weights and dropout; batch order and augmentation: fit's generator
    model = build_model(chosen.model).to(ctx.device)
    guard: list[str] = []  # per epoch: why to stop the trial early ("" to go on)
    seconds = 0.0  # of training so far, evaluation included
    budget = False  # the call's --budget ran out while it trained
    sampled = is_sampled(recorder.trial)  # neither a warm start nor a final training
    look = _early_look(ctx, recorder, model=model, sampled=sampled)
    early = ""  # why its early look pruned it
    rungs = not final and train.epochs == ctx.cfg.epochs  # rungs compare one schedule's epochs

    def on_progress(batch: int, batches: int) -> bool:
        epoch = len(guard) + 1  # epochs finished so far, plus this one
        ctx.observer.progress(
            number=recorder.number, epoch=epoch, epochs=train.epochs, batch=batch, batches=batches
        )
        nonlocal budget, early
        if look is not None and epoch == 1:
            early = early or look(batch, batches)
        budget = budget or ctx.over_budget()  # stop at this batch: the call must end on time
        return budget or bool(early)

    def on_epoch(m: EpochMetrics) -> bool:
        nonlocal seconds, budget
        ctx.observer.epoch(number=recorder.number, metrics=m, max_epochs=train.epochs)
        stop = recorder.epoch(m, rungs=rungs)
        seconds += m.epoch_seconds
        guard.append(
            chance_reason(epoch=m.epoch, val_accuracy=m.val_accuracy, classes=len(ctx.data.spec.classes))
            or budget_reason(seconds=seconds, budget=ctx.cfg.trial_timeout)
            or (rung(ctx, recorder, m) if rungs else "")
            or final_turn(ctx, m, sampled=sampled, epochs=train.epochs)  # "" for a final: not sampled
        )
        budget = budget or ctx.over_budget()
        recheck_threads(ctx, recorder, seconds=m.epoch_seconds, cost=cost)
        return stop or bool(guard[-1]) or budget

    with recorder.heartbeat():
        result = fit_config(
            model=model,
            data=ctx.data,
            optim=chosen.optim,
            train=train,
            on_epoch=on_epoch,
            on_progress=on_progress,
        )
        end = trial_end(result, guard=early or (guard[-1] if guard else ""), budget=budget)
        if end.state == link.COMPLETE:  # its best epoch's weights: a complete trial can be the best
            recorder.checkpoint(result=result, model_config=chosen.model)
    of = recorder.trial.attr(link.FINAL_OF)
    final_note = f" · final training of trial {of}'s configuration for {train.epochs} epochs" if final else ""
    return end, describe(chosen) + final_note
