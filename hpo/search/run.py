"""`hpo search` as one library call: open the session, run its trials in this process or in
`--jobs` worker processes, close it. Safe to call again: it continues where the last call
stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hpo.config import DataConfig, SearchConfig
from hpo.core.data import TrainValData, load_train_val
from hpo.core.device import check_precision, resolve_device
from hpo.core.footprint import Footprint, footprint, free_bytes, gib
from hpo.errors import ConfigError, HpoError
from hpo.families import FAMILIES
from hpo.search.context import SearchObserver
from hpo.search.loop import run_trials
from hpo.search.session import SearchOutcome, StopReason, close_session, open_session, search_study
from hpo.search.space import Space
from hpo.search.space_extent import largest_models
from hpo.stores import sqlite
from hpo.stores.mlflow import resolve_tracking_uri
from hpo.stores.runs import provenance
from hpo.stores.workspace import Workspace

if TYPE_CHECKING:
    from hpo.search.ray_workers import Cluster


def _check_space_fits(space: Space, *, device: torch.device, data: TrainValData) -> None:
    """Refuse a space whose largest model's parameters alone (weights, gradients, optimizer state)
    cannot fit the device; activations depend on the batch, and each trial is checked for them."""
    free = free_bytes(device)
    for cfg in largest_models(space, in_shape=data.spec.shape, classes=len(data.spec.classes)):
        parameters = footprint(cfg).parameters
        need = Footprint(parameters=parameters, activations_per_image=0).training_bytes(1)
        if need > free:
            family = FAMILIES[cfg.family]
            raise ConfigError(
                f"the space file allows {family.article} of {parameters:,} parameters: training it needs "
                f"about {gib(need)} before activations, {device} has {gib(free)} free; "
                f"narrow {family.size_keys}"
            )


# Of a --budget, what the end of the call needs: closing the runs and exporting the best trial's
# model (about 4 s on a 2-core CPU). A quarter of the budget at most, for short ones.
END_RESERVE_S = 10.0


def budget_deadline(*, budget: float | None, started: float) -> float | None:
    """The time.time() at which trials must stop so that a call started at `started` ends
    within `budget` seconds, its end included."""
    return None if budget is None else started + budget - min(END_RESERVE_S, budget / 4)


def run_search(
    *,
    cfg: SearchConfig,
    data_cfg: DataConfig,
    space: Space | None,
    observer: SearchObserver,
    command: str,
    create_only: bool = False,
    started: float | None = None,
) -> SearchOutcome:
    """`hpo search`: open the session, run its trials (in `cfg.jobs` worker processes when above
    1, or in workers placed by Ray with `cfg.ray`), close it. Both stores and the study are opened
    once in this process and passed down.
    `started`: the time.time() the command began, from which --budget counts (default: now)."""
    deadline = budget_deadline(budget=cfg.budget, started=started or time.time())
    if cfg.ray and create_only:
        raise ConfigError("--create-only starts no workers: drop --ray (or --create-only)")
    with contextlib.ExitStack() as stack:
        cluster = None
        if cfg.ray:  # before any record: a cluster that cannot be reached leaves nothing behind
            cfg, data_cfg, cluster = _on_ray(stack, ray=cfg.ray, cfg=cfg, data_cfg=data_cfg)
        return _run(
            cfg=cfg,
            data_cfg=data_cfg,
            space=space,
            observer=observer,
            command=command,
            create_only=create_only,
            deadline=deadline,
            cluster=cluster,
        )


def _on_ray(
    stack: contextlib.ExitStack, *, ray: str, cfg: SearchConfig, data_cfg: DataConfig
) -> tuple[SearchConfig, DataConfig, Cluster]:
    """Connect to Ray and place the workers (closed with `stack`); the configs as every node reads
    them: absolute paths and URLs (a Ray worker's directory is not ours), the workers placed."""
    from hpo.search.ray_workers import ray_cluster

    storage, tracking_uri = sqlite.absolute(cfg.storage), resolve_tracking_uri(cfg.tracking_uri)
    cluster = stack.enter_context(
        ray_cluster(address=ray, jobs=cfg.jobs, device=cfg.device, storage=storage, tracking_uri=tracking_uri)
    )
    cfg = dataclasses.replace(cfg, storage=storage, tracking_uri=tracking_uri, jobs=cluster.placement.workers)
    return cfg, _absolute(data_cfg), cluster


def _absolute(data_cfg: DataConfig) -> DataConfig:
    """The data's paths as every node must find them (a Ray worker's directory is not ours)."""
    path = str(Path(data_cfg.path).resolve()) if data_cfg.path else None
    return dataclasses.replace(data_cfg, data_dir=str(Path(data_cfg.data_dir).resolve()), path=path)


def _run(
    *,
    cfg: SearchConfig,
    data_cfg: DataConfig,
    space: Space | None,
    observer: SearchObserver,
    command: str,
    create_only: bool,
    deadline: float | None,
    cluster: Cluster | None,
) -> SearchOutcome:
    local = cfg.ray is None and (cfg.jobs or 1) == 1  # trials in this process
    device = resolve_device(cfg.device)
    check_precision(device, cfg.precision)  # here, before any trial or run is recorded
    for name in cfg.devices:  # an absent --devices entry fails here, not in a worker
        check_precision(resolve_device(name), cfg.precision)
    # The data first: bad data (a user's folder with an empty class...) leaves no store behind.
    # Workers load their own copy on their device; this process needs only the fingerprint then.
    data = load_train_val(data_cfg, device=device if local else resolve_device("cpu"))
    if space is not None:  # a space file's extremes (a study's own space was checked when made)
        _check_space_fits(space, device=device, data=data)
    ws = Workspace(storage=cfg.storage, tracking_uri=cfg.tracking_uri, create=True)  # one per process
    tags = provenance(
        device=device, dataset=data_cfg.dataset, fingerprint=data.fingerprint, seed=cfg.seed, command=command
    )
    study = search_study(ws, cfg)
    session = open_session(
        cfg=cfg, data_cfg=data_cfg, space=space, data=data, device_tags=tags, ws=ws, study=study
    )
    session = dataclasses.replace(session, deadline=deadline)
    ran: int = 0
    stopped: StopReason = "error"
    try:
        if create_only:  # the coordinator: schema, study, spec, experiment and parent run; no trial
            stopped = "created"
        elif cluster is not None:
            ran, stopped = cluster.run(session=session, observer=observer)
        elif not local:
            from hpo.search.workers import run_workers

            ran, stopped = run_workers(session=session, observer=observer)
        else:
            ran, stopped = run_trials(session=session, observer=observer, data=data, ws=ws, study=study)
    except HpoError as exc:  # every finished trial is kept: say how to go on
        raise type(exc)(f"{exc} (the study keeps its finished trials; resume with: {command})") from exc
    finally:
        outcome = close_session(session, ran=ran, stopped=stopped, ws=ws, study=study)
    return dataclasses.replace(outcome, placement=cluster.placement.describe() if cluster else None)
