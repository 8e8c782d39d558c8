"""The search session: opened once by the process the user started (both stores, the study with
its spec checked, the MLflow experiment and parent run, recovery of dead processes' trials); then
trials run in this process or in `--jobs` workers (`hpo.search.loop`, which never touches the
parent run); then the opening process closes the session once, ending the parent run with the
call's outcome (`hpo.search.run` strings the three together).

No work is lost: the target is a total over all calls; Ctrl-C/SIGTERM end the running trial as
FAIL (its run KILLED) and return an `interrupted` outcome."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Literal

from hpo.config import DataConfig, SearchConfig
from hpo.core.data import TrainValData
from hpo.core.device import resolve_device
from hpo.errors import HpoError, StudyError
from hpo.search.parent_run import open_parent_run
from hpo.search.recovery import recover_orphans
from hpo.search.space import (
    SHORT_CPU_BUDGET_S,
    Space,
    default_space,
    restrict_family,
    space_from_json,
    space_to_json,
)
from hpo.search.warm_start import PRIORS, attrs_for, points_for, priors_for
from hpo.signals import shielded
from hpo.stores import link
from hpo.stores import optuna as optuna_store
from hpo.stores.optuna import Counts, StudyHandle, TrialRow, make_pruner, make_sampler
from hpo.stores.spec import StudySpec, read_spec, write_spec
from hpo.stores.workspace import Workspace

# Why a search call stopped. "target": the study has its --trials; "timeout": the call ran out of
# its --timeout; "budget": its --budget (the trial in flight stopped too); "already-done": the
# target was met before the call; "created": --create-only;
# "error": an error ended it. Also recorded on the study (link.LAST_STOP) for the lockbox.
StopReason = Literal["target", "timeout", "budget", "interrupted", "already-done", "created", "error"]
BUDGET_MET: tuple[StopReason, ...] = ("target", "timeout", "budget", "already-done")  # ended as planned


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    target: int
    counts: Counts
    ran: int  # trials this call ran
    stopped: StopReason
    best: TrialRow | None
    top: list[TrialRow] = field(default_factory=list)
    recovered: int = 0  # trials of dead processes failed at start
    placement: str | None = None  # where the workers ran, when a scheduler (Ray) placed them


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
    deadline: float | None = None  # time.time() at which --budget stops trials (the end reserved)

    def workspace(self) -> Workspace:
        return Workspace(storage=self.cfg.storage, tracking_uri=self.cfg.tracking_uri, create=True)


def search_study(ws: Workspace, cfg: SearchConfig) -> StudyHandle:
    """The call's study, created if the store has none, with the call's sampler and pruner."""
    return ws.studies.create_or_resume(
        name=cfg.study,
        sampler=make_sampler(cfg.sampler, seed=cfg.seed),
        pruner=make_pruner(cfg.pruner, epochs=cfg.epochs),
        minimized=tuple(link.SIZE_ATTRS[name] for name in cfg.objectives[1:]),
    )


def _resolve_space(
    study: StudyHandle, *, given: Space | None, cfg: SearchConfig
) -> tuple[Space, dict[str, Any]]:
    """The space this call samples and its JSON form for the spec. Without a space file, a study
    goes on with the space it was made with (so a newer hpo's default never locks it out); a new
    study takes the default for its objective and limits. `cfg.model` then fixes the family."""
    recorded, model = read_spec(study), cfg.model
    if given is not None or recorded is None:
        short = (
            cfg.budget is not None
            and cfg.budget < SHORT_CPU_BUDGET_S
            and resolve_device(cfg.device).type == "cpu"
        )
        space = restrict_family(
            given or default_space(objective=cfg.objective, limits=cfg.limits, short_cpu_budget=short), model
        )
        return space, space_to_json(space)
    base = space_from_json(recorded.space)
    space = restrict_family(base, model)
    return space, recorded.space if space["family"] == base["family"] else space_to_json(space)


def _check_spec(study: StudyHandle, spec: StudySpec) -> None:
    """Record the spec of a new study; refuse to resume one whose trials would not be comparable."""
    recorded = read_spec(study)
    if recorded is None:
        write_spec(study, spec)
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
    data: TrainValData,
    device_tags: dict[str, str],
    ws: Workspace | None = None,
    study: StudyHandle | None = None,
) -> Session:
    """Open both stores, create or resume the study and its MLflow experiment and parent run, and
    fail the trials that dead processes left RUNNING. `space` None: the study's own, or the default.
    `ws`, `study`: stores and study this process already opened (each opening costs ~0.1-0.2 s)."""
    ws = ws or Workspace(storage=cfg.storage, tracking_uri=cfg.tracking_uri, create=True)
    with ws.studies.lock():  # several processes may start on a fresh store at once
        store = ws.mlflow
        study = study or search_study(ws, cfg)
        space, space_json = _resolve_space(study, given=space, cfg=cfg)
        if cfg.warm_start and not study.rows():
            for name, params in _warm_starts(ws, space=space, cfg=cfg).items():
                study.enqueue(params, attrs=attrs_for(name, epochs=cfg.epochs))
        spec = StudySpec.new(
            data_cfg=data_cfg, data=data, epochs=cfg.epochs, space=space_json, objective=cfg.objective
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


# Earlier studies read for their best configuration: the store's latest ones (each read costs
# ~0.1 s on SQLite).
PRIOR_STUDIES = 20


def _warm_starts(ws: Workspace, *, space: Space, cfg: SearchConfig) -> dict[str, dict[str, Any]]:
    """A new study's warm starts: hpo's known-good points, then the best configurations of the
    store's earlier single-objective studies (`search.warm_start`), --trials of them at most."""
    points = points_for(space, limit=cfg.trials)
    bests: dict[str, TrialRow] = {}
    for other in ws.studies.others(exclude=cfg.study, limit=PRIOR_STUDIES):
        best = None if other.multi else other.best()
        if best is not None:
            bests[other.name] = best
    return {**points, **priors_for(space, bests=bests, limit=min(PRIORS, cfg.trials - len(points)))}


def close_session(
    session: Session,
    *,
    ran: int,
    stopped: StopReason,
    ws: Workspace | None = None,
    study: StudyHandle | None = None,
) -> SearchOutcome:
    """End the parent run once: KILLED when interrupted, FAILED on an error, else FINISHED."""
    ws = ws or session.workspace()
    status: link.RunStatus = (
        "KILLED" if stopped == "interrupted" else "FAILED" if stopped == "error" else "FINISHED"
    )
    with shielded(), contextlib.suppress(HpoError):
        ws.mlflow.end_run(session.parent_run_id, status=status)
    study = study or search_study(ws, session.cfg)
    with contextlib.suppress(Exception):  # a record for the lockbox's "is it done?"; never fatal
        study.set_attr(link.LAST_STOP, stopped)
    if stopped in BUDGET_MET:
        _serve_best(ws, study)
    complete = sorted(study.rows(states=(link.COMPLETE,)), key=lambda r: -(r.value or 0.0))
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
        ws.served_model_uri(link.run_id(best))
