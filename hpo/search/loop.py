"""The trial loop of one process: run trials of an open session until the study's target, the
call's timeout or an interrupt. Runs in the process the user started, or in each `--jobs`
worker; never touches the parent run (the session's opener closes it)."""

from __future__ import annotations

import time

import torch

from hpo.core.cost import CpuThreads, choose_threads
from hpo.core.data import TrainValData, load_train_val
from hpo.core.device import device_label, resolve_device, seed_everything
from hpo.search.budget import CallEstimate, estimate, is_skip, nothing_fits
from hpo.search.context import SearchObserver, TrialContext
from hpo.search.parent_run import record_front, record_trial
from hpo.search.pareto import front
from hpo.search.session import Session, StopReason, search_study
from hpo.search.space import stretched
from hpo.search.trial import run_trial
from hpo.signals import sigterm_as_interrupt
from hpo.stores import link
from hpo.stores.optuna import StudyHandle
from hpo.stores.spec import read_spec
from hpo.stores.workspace import Workspace

# Trials in a row skipped for their cost: after MAX_SKIPS the time left goes to the final training
# of the best configuration, if it can still pay for more epochs than the best had; else the
# search goes on with what the time left can pay for (cheap draws, each skip refused in
# milliseconds by its FLOPs), and END_SKIPS in a row end a call with a --budget.
MAX_SKIPS = 3
END_SKIPS = 3 * MAX_SKIPS


def run_trials(
    *,
    session: Session,
    observer: SearchObserver,
    data: TrainValData | None = None,
    device_name: str | None = None,
    threads: int | None = None,
    ws: Workspace | None = None,
    study: StudyHandle | None = None,
) -> tuple[int, StopReason]:
    """Run trials until the study has `cfg.trials` finished ones, the timeout passes or the user
    interrupts; returns (trials run, why it stopped). The parent run is left to `close_session`.
    `device_name`: a worker's own device instead of the session's; `threads`: the CPU threads a
    scheduler gave it (Ray), else the free cores shared with sibling workers; `ws` and `study`: the
    opening process's stores and study handle (a worker opens its own, and reads its own data)."""
    cfg = session.cfg
    device = resolve_device(device_name or cfg.device)
    tags = {**session.tags, link.DEVICE: device_label(device)} if device_name else session.tags
    seed_everything(seed=cfg.seed, deterministic=False, device=device)
    if device.type == "cpu":  # the cores other processes leave free, shared with sibling workers
        torch.set_num_threads(threads or choose_threads(jobs=cfg.jobs or 1))
    ws = ws or session.workspace()
    study = study or search_study(ws, cfg)  # its sampler is seeded again at every claim
    if data is None:  # a worker, maybe on another host: its copy of the data must be the study's
        data = load_train_val(session.data_cfg, device=device)
        _check_data(data, session=session, study=study)
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
        threads=CpuThreads(available=torch.get_num_threads()),
    )
    counts = study.counts()
    done = counts.finished
    observer.started(
        study=cfg.study,
        target=cfg.trials,
        counts=counts,
        best=study.best(),
        resumed=done > 0 or session.recovered > 0,
        device=tags[link.DEVICE],
        estimate=_estimate(ctx, study=study, left=cfg.trials - done),
        deadline=session.deadline,
    )
    return _loop(ctx, already_done=done >= cfg.trials)


def _check_data(data: TrainValData, *, session: Session, study: StudyHandle) -> None:
    spec = read_spec(study)
    if spec is not None:
        spec.check_fingerprint(data.fingerprint, data_dir=session.data_cfg.data_dir, study=study.name)


def _estimate(ctx: TrialContext, *, study: StudyHandle, left: int) -> CallEstimate | None:
    """The call's estimate from probes: the warm starts still queued, and random draws."""
    if left <= 0:
        return None
    warm = study.queued_params()
    return estimate(
        space=ctx.space,
        warm=warm,
        data=ctx.data,
        precision=ctx.cfg.precision,
        trials=left,
        epochs=ctx.cfg.epochs,
    )


def _loop(ctx: TrialContext, *, already_done: bool) -> tuple[int, StopReason]:
    start, ran, skips, final = time.monotonic(), 0, 0, False
    try:
        with sigterm_as_interrupt():
            while True:
                if ctx.cfg.timeout is not None and time.monotonic() - start >= ctx.cfg.timeout:
                    return ran, "timeout"
                if ctx.over_budget() or _nothing_fits(ctx):
                    return ran, "budget"
                final = final or _queue_final(ctx)
                row = run_trial(ctx)
                if row is None and ctx.study.counts().finished < ctx.cfg.trials:
                    # The last trials run elsewhere: wait for them to end, or to lose their
                    # heartbeat and be re-queued here (a dead host never holds the target).
                    time.sleep(_poll_seconds(ctx))
                    continue
                if row is None:
                    return ran, "already-done" if already_done and not ran else "target"
                ran += 1
                skips = skips + 1 if is_skip(row) else 0
                best = ctx.study.best()
                record_trial(
                    store=ctx.store,
                    parent_run_id=ctx.parent_run_id,
                    experiment_id=ctx.experiment_id,
                    row=row,
                    best=best,
                )
                if ctx.study.multi and row.state == link.COMPLETE:
                    found = front(ctx.study.rows(states=(link.COMPLETE,)))
                    record_front(store=ctx.store, parent_run_id=ctx.parent_run_id, front=found)
                ctx.observer.trial_finished(row=row, counts=ctx.study.counts(), best=best)
                if skips >= MAX_SKIPS and not final and _queue_final(ctx, now=True):
                    final, skips = True, 0  # what the sampler proposes, the budget cannot pay for
                elif skips >= END_SKIPS:
                    return ran, "budget"
    except KeyboardInterrupt:
        return ran, "interrupted"


def _queue_final(ctx: TrialContext, *, now: bool = False) -> bool:
    """Queue the --budget's final training of the best configuration when its time has come
    (`search.budget.plan_final`), or at once with `now`; True once queued, or when another
    process queued it."""
    if ctx.deadline is None:
        return False
    pending = ctx.study.rows(states=(link.WAITING, link.RUNNING))
    if any(r.attrs.get(link.FINAL_OF) is not None for r in pending):
        return True
    best = ctx.study.best()
    plan = ctx.final_plan(best, now=now)
    if best is None or plan is None:
        return False
    attrs = {link.FINAL_OF: plan.of, link.SCHEDULE_EPOCHS: plan.epochs}
    schedule = link.schedule_epochs(best, study_epochs=ctx.cfg.epochs)
    params = stretched(plan.params, space=ctx.space, schedule=schedule, epochs=plan.epochs)
    ctx.study.enqueue(params, attrs=attrs, again=True)
    return True


def _nothing_fits(ctx: TrialContext) -> bool:
    rows = ctx.study.rows(states=link.FINISHED_STATES)
    return nothing_fits(rows, device=ctx.tags[link.DEVICE], deadline=ctx.deadline)


def _poll_seconds(ctx: TrialContext) -> float:
    return min(5.0, float(ctx.study.heartbeat_interval))
