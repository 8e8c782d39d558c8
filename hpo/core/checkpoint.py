"""Checkpoint files: `model.pt` (a state_dict) beside `config.json` (model config, normalization,
provenance), so a model can be rebuilt from a run's artifacts alone."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo.config import ModelConfig, model_config_from_dict
from hpo.core.data import Normalization
from hpo.core.models import build_model
from hpo.errors import CheckpointError, ConfigError

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module  # on the CPU, in eval mode
    model_config: ModelConfig
    normalization: Normalization
    meta: dict[str, Any]  # dataset, fingerprint, epoch, val accuracy, versions...


def write_checkpoint(
    directory: Path,
    *,
    state_dict: dict[str, torch.Tensor],
    model_config: ModelConfig,
    normalization: Normalization,
    meta: dict[str, Any],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    cpu_state = {k: v.detach().cpu() for k, v in state_dict.items()}
    torch.save(cpu_state, directory / WEIGHTS_FILE)
    config = {"model": asdict(model_config), "normalization": asdict(normalization), "meta": meta}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


def _read_config(path: Path) -> tuple[ModelConfig, Normalization, dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint config {path} is missing; the run has no usable checkpoint")
    try:
        raw = json.loads(path.read_text())
        model_config = model_config_from_dict(raw["model"])
        normalization = Normalization(**raw["normalization"])
        meta = dict(raw.get("meta", {}))
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint config {path} is corrupt ({exc}); re-run the trial") from exc
    return model_config, normalization, meta


def _check_shapes(cfg: ModelConfig, state: dict[str, torch.Tensor], *, config: Path, weights: Path) -> None:
    """The config must describe the weights before its model is built: a tampered config.json
    could ask for a model of any size (the shapes are compared on the meta device: no memory)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if expected != found:
        wanted = sum(math.prod(s) for s in expected.values())
        raise CheckpointError(
            f"checkpoint config {config} describes a model of {wanted:,} parameters that the weights in "
            f"{weights} do not match: the checkpoint was changed; re-run the trial"
        )


def read_checkpoint(directory: Path) -> LoadedModel:
    """Rebuild the model from a checkpoint folder; damage is a CheckpointError naming the file."""
    model_config, normalization, meta = _read_config(directory / CONFIG_FILE)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights} are missing; the run has no usable checkpoint")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/corrupt pickles
        raise CheckpointError(
            f"checkpoint weights {weights} are corrupt ({type(exc).__name__}); re-run the trial"
        ) from exc
    _check_shapes(model_config, state, config=directory / CONFIG_FILE, weights=weights)
    try:
        model = build_model(model_config)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # torch raises several types for truncated/corrupt pickles
        raise CheckpointError(
            f"checkpoint weights {weights} are corrupt or do not match their config "
            f"({type(exc).__name__}); re-run the trial"
        ) from exc
    model.eval()
    return LoadedModel(model=model, model_config=model_config, normalization=normalization, meta=meta)
