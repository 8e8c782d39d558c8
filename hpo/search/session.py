"""The search session, `hpo search` as a library call. The session is opened once by the process
the user started (both stores, the study with its spec checked, the MLflow experiment and parent
run, recovery of dead processes' trials); then trials run in this process or in `--jobs` workers
(`run_trials`, which never touches the parent run); then the opening process closes the session
once, ending the parent run with the call's outcome.

No work is lost: the target is a total over all calls; Ctrl-C/SIGTERM end the running trial as
FAIL (its run KILLED) and return an `interrupted` outcome."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from hpo.config import DataConfig, SearchConfig
from hpo.core.data import TrainValData, load_train_val
from hpo.core.engine import check_precision, device_label, resolve_device, seed_everything
from hpo.errors import HpoError, StudyError
from hpo.results.registry import served_model_uri
from hpo.search.parent_run import open_parent_run, record_trial
from hpo.search.recovery import recover_orphans
from hpo.search.space import DEFAULT_SPACE, Space, restrict_family, space_from_json, space_to_json
from hpo.search.trial import SearchObserver, TrialContext, run_trial
from hpo.search.warm_start import points_for
from hpo.signals import shielded, sigterm_as_interrupt
from hpo.stores import link
from hpo.stores import optuna as optuna_store
from hpo.stores.locks import store_lock
from hpo.stores.optuna import Counts, StudyHandle, TrialRow, create_or_resume, make_pruner, make_sampler
from hpo.stores.runs import provenance
from hpo.stores.workspace import Workspace


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    target: int
    counts: Counts
    ran: int  # trials this call ran
    stopped: str  # "target", "timeout", "interrupted", "already-done" or "created" (--create-only)
    best: TrialRow | None
    top: list[TrialRow] = field(default_factory=list)
    recovered: int = 0  # trials of dead processes failed at start


@dataclass(frozen=True)
class Session:
    """An open search call: what every process running its trials needs (picklable)."""

    cfg: SearchConfig
    data_cfg: DataConfig
    space: Space
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]  # provenance of this call, on every run
    recovered: int  # trials of dead processes failed when the session opened

    def workspace(self) -> Workspace:
        return Workspace(storage=self.cfg.storage, tracking_uri=self.cfg.tracking_uri)


def _study(ws: Workspace, cfg: SearchConfig, *, seed: int) -> StudyHandle:
    study, _ = create_or_resume(
        ws.storage,
        name=cfg.study,
        sampler=make_sampler(cfg.sampler, seed=seed),
        pruner=make_pruner(cfg.pruner, epochs=cfg.epochs),
    )
    return study


def _resolve_space(study: StudyHandle, *, given: Space | None, model: str) -> tuple[Space, dict[str, Any]]:
    """The space this call samples and its JSON form for the spec. Without a space file, a study
    goes on with the space it was made with (so a newer hpo's default never locks it out); a new
    study takes the default. `model` then fixes the family."""
    recorded = link.read_spec(study)
    if given is not None or recorded is None:
        space = restrict_family(given or DEFAULT_SPACE, model)
        return space, space_to_json(space)
    base = space_from_json(recorded.space)
    space = restrict_family(base, model)
    return space, recorded.space if space["family"] == base["family"] else space_to_json(space)


def _check_spec(study: StudyHandle, spec: link.StudySpec) -> None:
    """Record the spec of a new study; refuse to resume one whose trials would not be comparable."""
    recorded = link.read_spec(study)
    if recorded is None:
        link.write_spec(study, spec)
        return
    mismatch = recorded.mismatch(spec)
    if mismatch is not None:
        key, before, now = mismatch
        raise StudyError(
            f"study {study.name!r} was made with a different {key} ({_short(before)} vs now "
            f"{_short(now)}); its trials would not be comparable: use the same settings or start a "
            "new study with --study NEW_NAME"
        )


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def open_session(
    *,
    cfg: SearchConfig,
    data_cfg: DataConfig,
    space: Space | None,
    fingerprint: str,
    device_tags: dict[str, str],
    ws: Workspace | None = None,
) -> Session:
    """Open both stores, create or resume the study and its MLflow experiment and parent run, and
    fail the trials that dead processes left RUNNING. `space` None: the study's own, or the default.
    `ws`: stores this process already opened (each opening costs ~0.1-0.2 s of start-up)."""
    ws = ws or Workspace(storage=cfg.storage, tracking_uri=cfg.tracking_uri)
    with store_lock(ws.storage):  # several processes may start on a fresh store at once
        store = ws.mlflow
        study = _study(ws, cfg, seed=cfg.seed)
        space, space_json = _resolve_space(study, given=space, model=cfg.model)
        if cfg.warm_start and not study.rows():
            for name, params in points_for(space, limit=cfg.trials).items():
                study.enqueue(params, attrs={link.WARM_START: name})
        spec = link.StudySpec.new(
            data_cfg=data_cfg, fingerprint=fingerprint, epochs=cfg.epochs, space=space_json
        )
        _check_spec(study, spec)
        study.set_attr(link.TARGET, cfg.trials)
        tags = {**device_tags, "optuna_version": optuna_store.version()}
        experiment_id = store.experiment(cfg.study)
        parent = open_parent_run(study=study, store=store, experiment_id=experiment_id, tags=tags)
    recovered = recover_orphans(study=study, store=store)
    return Session(
        cfg=cfg,
        data_cfg=data_cfg,
        space=space,
        experiment_id=experiment_id,
        parent_run_id=parent,
        tags=tags,
        recovered=recovered,
    )


def run_trials(
    *,
    session: Session,
    observer: SearchObserver,
    data: TrainValData | None = None,
    device_name: str | None = None,
    ws: Workspace | None = None,
) -> tuple[int, str]:
    """Run trials until the study has `cfg.trials` finished ones, the timeout passes or the user
    interrupts; returns (trials run, why it stopped). The parent run is left to `close_session`.
    `device_name`: a `--jobs` worker's own device instead of the session's; `ws`: the opening
    process's stores (a worker opens its own)."""
    cfg = session.cfg
    device = resolve_device(device_name or cfg.device)
    tags = {**session.tags, "device": device_label(device)} if device_name else session.tags
    seed_everything(seed=cfg.seed, deterministic=False, device=device)
    data = data if data is not None else load_train_val(session.data_cfg, device=device)
    ws = ws or session.workspace()
    study = _study(ws, cfg, seed=cfg.seed)  # its sampler is seeded again at every claim
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
    )
    done = study.counts().finished
    observer.started(
        study=cfg.study,
        done=done,
        target=cfg.trials,
        resumed=done > 0 or session.recovered > 0,
        device=tags["device"],
    )
    return _loop(ctx, already_done=done >= cfg.trials)


def _loop(ctx: TrialContext, *, already_done: bool) -> tuple[int, str]:
    start, ran = time.monotonic(), 0
    try:
        with sigterm_as_interrupt():
            while True:
                if ctx.cfg.timeout is not None and time.monotonic() - start >= ctx.cfg.timeout:
                    return ran, "timeout"
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
    return min(5.0, float(ctx.study.storage.heartbeat_interval or 5))


def close_session(session: Session, *, ran: int, stopped: str, ws: Workspace | None = None) -> SearchOutcome:
    """End the parent run once: KILLED when interrupted, FAILED on an error, else FINISHED."""
    ws = ws or session.workspace()
    status = {"interrupted": "KILLED", "error": "FAILED"}.get(stopped, "FINISHED")
    with shielded(), contextlib.suppress(HpoError):
        ws.mlflow.end_run(session.parent_run_id, status=status)
    study = _study(ws, session.cfg, seed=session.cfg.seed)
    with contextlib.suppress(Exception):  # a record for the lockbox's "is it done?"; never fatal
        study.set_attr(link.LAST_STOP, stopped)
    if stopped in ("target", "timeout", "already-done"):
        _serve_best(ws, study)
    complete = sorted(study.rows(states=("COMPLETE",)), key=lambda r: -(r.value or 0.0))
    return SearchOutcome(
        study=study.name,
        target=session.cfg.trials,
        counts=study.counts(),
        ran=ran,
        stopped=stopped,
        best=study.best(),
        top=complete[:5],
        recovered=session.recovered,
    )


def _serve_best(ws: Workspace, study: StudyHandle) -> None:
    """Log the best trial's MLflow model (trials log only checkpoints: an export costs ~1 s, more
    than a GPU trial's training). Never fatal: `hpo best --register` logs it on demand too."""
    best = study.best()
    if best is None or not link.run_id(best):
        return
    with shielded(), contextlib.suppress(HpoError):
        served_model_uri(ws, link.run_id(best))


def run_search(
    *,
    cfg: SearchConfig,
    data_cfg: DataConfig,
    space: Space | None,
    observer: SearchObserver,
    command: str,
    create_only: bool = False,
) -> SearchOutcome:
    """`hpo search`: open the session, run its trials (in `cfg.jobs` worker processes when above
    1), close it. Safe to call again: it continues where the last call stopped."""
    device = resolve_device(cfg.device)
    check_precision(device, cfg.precision)  # here, before any trial or run is recorded
    for name in cfg.devices:  # an absent --devices entry fails here, not in a worker
        check_precision(resolve_device(name), cfg.precision)
    ws = Workspace(storage=cfg.storage, tracking_uri=cfg.tracking_uri)  # one per process: reused below
    ws.storage  # noqa: B018 -- fail fast on a bad URL, before loading data
    # Workers load their own copy on their device; this process needs only the fingerprint then.
    data = load_train_val(data_cfg, device=device if cfg.jobs == 1 else resolve_device("cpu"))
    tags = provenance(
        device=device, dataset=data_cfg.dataset, fingerprint=data.fingerprint, seed=cfg.seed, command=command
    )
    session = open_session(
        cfg=cfg, data_cfg=data_cfg, space=space, fingerprint=data.fingerprint, device_tags=tags, ws=ws
    )
    ran, stopped = 0, "error"
    try:
        if create_only:  # the coordinator: schema, study, spec, experiment and parent run; no trial
            stopped = "created"
        elif cfg.jobs > 1:
            from hpo.search.workers import run_workers

            ran, stopped = run_workers(session=session, observer=observer)
        else:
            ran, stopped = run_trials(session=session, observer=observer, data=data, ws=ws)
    except HpoError as exc:  # every finished trial is kept: say how to go on
        raise type(exc)(f"{exc} (the study keeps its finished trials; resume with: {command})") from exc
    finally:
        outcome = close_session(session, ran=ran, stopped=stopped, ws=ws)
    return outcome
