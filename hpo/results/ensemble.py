"""Ensembles chosen on validation: the top-K complete trials of a study, whose softmax outputs
are averaged. Members are picked by validation accuracy only, and the ensemble's validation
accuracy is known before the lockbox looks at the test split."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hpo.core.checkpoint import LoadedModel
from hpo.core.engine import predict_logits
from hpo.errors import ConfigError, StudyError
from hpo.stores import link
from hpo.stores.optuna import StudyHandle, TrialRow
from hpo.stores.workspace import Workspace


@dataclass(frozen=True)
class Members:
    trials: list[int]  # trial numbers, best first
    run_ids: list[str]
    models: list[LoadedModel]


def top_trials(handle: StudyHandle, k: int) -> list[TrialRow]:
    """The k complete trials with the best validation accuracy (ties: the earlier trial)."""
    if k < 1:
        raise ConfigError(f"--ensemble must be at least 1; got {k}")
    done = sorted(handle.rows(states=(link.COMPLETE,)), key=lambda r: (-(r.value or 0.0), r.number))
    if len(done) < k:
        raise StudyError(
            f"study {handle.name!r} has {len(done)} complete trial(s), fewer than --ensemble {k}: "
            "use a smaller --ensemble or run more trials"
        )
    return done[:k]


def load_members(ws: Workspace, rows: list[TrialRow]) -> Members:
    run_ids = [link.run_id(r) for r in rows]
    return Members(
        trials=[r.number for r in rows], run_ids=run_ids, models=[ws.load_model(i) for i in run_ids]
    )


def mean_probabilities(models: list[LoadedModel], x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) normalized images -> (N, classes) softmax averaged over the models. All
    members share the study's split, hence its normalization, so they read the same `x`."""
    probs = [predict_logits(m.model.to(x.device), x).softmax(1) for m in models]
    return torch.stack(probs).mean(0)


def scores(probs: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy 0..1, mean negative log-likelihood) of averaged probabilities."""
    nll = F.nll_loss(probs.clamp_min(1e-12).log(), y)
    return float((probs.argmax(1) == y).float().mean()), float(nll)
