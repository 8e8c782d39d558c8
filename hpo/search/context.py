"""What every trial of one search process shares (`TrialContext`), and what the CLI hears while a
search runs (`SearchObserver`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from hpo.config import DataConfig, SearchConfig
from hpo.core.cost import CpuThreads
from hpo.core.data import TrainValData
from hpo.core.engine import EpochMetrics
from hpo.search.budget import CallEstimate, FinalPlan, plan_final
from hpo.search.space import Space
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import Counts, StudyHandle, TrialRow


class SearchObserver(Protocol):
    """What the CLI hears while a search runs."""

    def started(
        self,
        *,
        study: str,
        target: int,
        counts: Counts,
        best: TrialRow | None,
        resumed: bool,
        device: str,
        estimate: CallEstimate | None,
        deadline: float | None,
    ) -> None: ...
    def trial_started(self, *, number: int, params: dict[str, Any], predicted_s: float | None) -> None: ...
    def progress(self, *, number: int, epoch: int, epochs: int, batch: int, batches: int) -> None: ...
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
    deadline: float | None = None  # time.time() at which --budget stops the trial in flight
    threads: CpuThreads = field(default_factory=lambda: CpuThreads(available=torch.get_num_threads()))

    def over_budget(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def final_plan(self, best: TrialRow | None, *, now: bool = False) -> FinalPlan | None:
        """The --budget's final training of `best` if it is due now (`search.budget.plan_final`),
        or at once with `now`; None without a --budget."""
        if self.deadline is None:
            return None
        left = self.deadline - time.time()
        return plan_final(
            best=best, epochs=self.cfg.epochs, left_s=left, budget_s=self.cfg.budget or 0.0, now=now
        )
