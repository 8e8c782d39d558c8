"""The trial loop of one process: run trials of an open session until the study's target, the
call's timeout or an interrupt. Runs in the process the user started, or in each `--jobs`
worker; never touches the parent run (the session's opener closes it)."""

from __future__ import annotations

import time

from hpo.core.data import TrainValData, load_train_val
from hpo.core.device import device_label, resolve_device, seed_everything
from hpo.search.parent_run import record_trial
from hpo.search.session import Session, StopReason, search_study
from hpo.search.trial import SearchObserver, TrialContext, run_trial
from hpo.signals import sigterm_as_interrupt
from hpo.stores.optuna import StudyHandle
from hpo.stores.workspace import Workspace


def run_trials(
    *,
    session: Session,
    observer: SearchObserver,
    data: TrainValData | None = None,
    device_name: str | None = None,
    ws: Workspace | None = None,
    study: StudyHandle | None = None,
) -> tuple[int, StopReason]:
    """Run trials until the study has `cfg.trials` finished ones, the timeout passes or the user
    interrupts; returns (trials run, why it stopped). The parent run is left to `close_session`.
    `device_name`: a `--jobs` worker's own device instead of the session's; `ws` and `study`: the
    opening process's stores and study handle (a worker opens its own)."""
    cfg = session.cfg
    device = resolve_device(device_name or cfg.device)
    tags = {**session.tags, "device": device_label(device)} if device_name else session.tags
    seed_everything(seed=cfg.seed, deterministic=False, device=device)
    data = data if data is not None else load_train_val(session.data_cfg, device=device)
    ws = ws or session.workspace()
    study = study or search_study(ws, cfg)  # its sampler is seeded again at every claim
    ctx = TrialContext(
        cfg=cfg,
        data_cfg=session.data_cfg,
        space=session.space,
        data=data,
        device=device,
        store=ws.mlflow,
        study=study,
        experiment_id=session.experiment_id,
        parent_run_id=session.parent_run_id,
        tags=tags,
        observer=observer,
        deadline=session.deadline,
    )
    counts = study.counts()
    done = counts.finished
    observer.started(
        study=cfg.study,
        target=cfg.trials,
        counts=counts,
        best=study.best(),
        resumed=done > 0 or session.recovered > 0,
        device=tags["device"],
    )
    return _loop(ctx, already_done=done >= cfg.trials)


def _loop(ctx: TrialContext, *, already_done: bool) -> tuple[int, StopReason]:
    start, ran = time.monotonic(), 0
    try:
        with sigterm_as_interrupt():
            while True:
                if ctx.cfg.timeout is not None and time.monotonic() - start >= ctx.cfg.timeout:
                    return ran, "timeout"
                if ctx.over_budget():
                    return ran, "budget"
                row = run_trial(ctx)
                if row is None and ctx.study.counts().finished < ctx.cfg.trials:
                    # The last trials run elsewhere: wait for them to end, or to lose their
                    # heartbeat and be re-queued here (a dead host never holds the target).
                    time.sleep(_poll_seconds(ctx))
                    continue
                if row is None:
                    return ran, "already-done" if already_done and not ran else "target"
                ran += 1
                best = ctx.study.best()
                record_trial(
                    store=ctx.store,
                    parent_run_id=ctx.parent_run_id,
                    experiment_id=ctx.experiment_id,
                    row=row,
                    best=best,
                )
                ctx.observer.trial_finished(row=row, counts=ctx.study.counts(), best=best)
    except KeyboardInterrupt:
        return ran, "interrupted"


def _poll_seconds(ctx: TrialContext) -> float:
    return min(5.0, float(ctx.study.heartbeat_interval))
