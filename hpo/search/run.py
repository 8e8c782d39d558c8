"""`hpo search` as one library call: open the session, run its trials in this process or in
`--jobs` worker processes, close it. Safe to call again: it continues where the last call
stopped."""

from __future__ import annotations

import dataclasses
import time

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
from hpo.stores.runs import provenance
from hpo.stores.workspace import Workspace


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
    1), close it. Both stores and the study are opened once in this process and passed down.
    `started`: the time.time() the command began, from which --budget counts (default: now)."""
    deadline = budget_deadline(budget=cfg.budget, started=started or time.time())
    device = resolve_device(cfg.device)
    check_precision(device, cfg.precision)  # here, before any trial or run is recorded
    for name in cfg.devices:  # an absent --devices entry fails here, not in a worker
        check_precision(resolve_device(name), cfg.precision)
    # The data first: bad data (a user's folder with an empty class...) leaves no store behind.
    # Workers load their own copy on their device; this process needs only the fingerprint then.
    data = load_train_val(data_cfg, device=device if cfg.jobs == 1 else resolve_device("cpu"))
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
        elif cfg.jobs > 1:
            from hpo.search.workers import run_workers

            ran, stopped = run_workers(session=session, observer=observer)
        else:
            ran, stopped = run_trials(session=session, observer=observer, data=data, ws=ws, study=study)
    except HpoError as exc:  # every finished trial is kept: say how to go on
        raise type(exc)(f"{exc} (the study keeps its finished trials; resume with: {command})") from exc
    finally:
        outcome = close_session(session, ran=ran, stopped=stopped, ws=ws, study=study)
    return outcome
