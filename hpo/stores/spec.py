"""What a study was made with: `StudySpec` (its data and split fingerprint, epochs, space and
objective, and for a user's own data how its images are framed), stored as one study attribute
(`link.SPEC`) and checked when a search resumes the study, so its trials stay comparable."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import __version__
from hpo.config import DataConfig
from hpo.errors import StudyError
from hpo.stores.link import SPEC, StudyAttrs

if TYPE_CHECKING:  # torch: `hpo studies` and `hpo trials` answer without it
    from hpo.core.data import TrainValData


@dataclass(frozen=True)
class StudySpec:
    """What makes a study's trials comparable (checked when a search resumes it), plus how it
    was made. Stored as a study user attribute; `space` is `space.space_to_json(...)`."""

    dataset: str
    val_size: int
    split_seed: int
    fingerprint: str  # data.fingerprint: dataset content + validation indices
    epochs: int  # maximum epochs per trial
    space: dict[str, Any]
    hpo_version: str = __version__
    created: str = ""  # local time, ISO 8601
    objective: str = "accuracy"  # config.OBJECTIVES (a study made before objectives: accuracy)
    # A user's own data (`--data`): its path (absolute) and --image-size; "" and None for a
    # registered dataset. Then what the data is, for `hpo predict` and the report: one image's
    # (C, H, W), the class names by label, how a user's image is framed (datasets.Framing).
    path: str = ""
    image_size: list[int] | None = None
    shape: list[int] = field(default_factory=lambda: [1, 28, 28])
    classes: list[str] = field(default_factory=list)  # [] on a study made before: its registered names
    framing: str = ""

    COMPARABLE = ("dataset", "val_size", "split_seed", "fingerprint", "epochs", "space", "objective")

    @classmethod
    def new(
        cls,
        *,
        data_cfg: DataConfig,
        data: TrainValData,
        epochs: int,
        space: dict[str, Any],
        objective: str = "accuracy",
    ) -> StudySpec:
        return cls(
            dataset=data_cfg.dataset,
            val_size=len(data.val),
            split_seed=data_cfg.split_seed,
            fingerprint=data.fingerprint,
            epochs=epochs,
            space=space,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            objective=objective,
            path=str(Path(data_cfg.path).resolve()) if data_cfg.path else "",
            image_size=list(data_cfg.image_size) if data_cfg.image_size else None,
            shape=list(data.spec.shape),
            classes=list(data.spec.classes),
            framing=data.spec.framing,
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names by label (a study made before they were recorded: MNIST's or Fashion-MNIST's)."""
        if self.classes:
            return tuple(self.classes)
        from hpo.core.datasets import DATASETS

        return DATASETS[self.dataset].classes

    @property
    def input_framing(self) -> str:
        """How `hpo predict` frames an image like the data (datasets.Framing)."""
        from hpo.core.datasets import DATASETS

        return self.framing or DATASETS[self.dataset].framing

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, raw: dict[str, Any]) -> StudySpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def data_config(self, *, data_dir: str) -> DataConfig:
        """The data settings the study was made with, read from `data_dir`."""
        return DataConfig(
            dataset=self.dataset,
            data_dir=data_dir,
            val_size=self.val_size,
            split_seed=self.split_seed,
            path=self.path or None,
            image_size=(self.image_size[0], self.image_size[1]) if self.image_size else None,
        )

    def check_fingerprint(self, found: str, *, data_dir: str, study: str) -> None:
        """Refuse data whose split fingerprint `found` is not the study's: other files, or changed ones."""
        if found == self.fingerprint:
            return
        fix = "its files changed since" if self.path else "point --data-dir at the dataset it was trained on"
        raise StudyError(
            f"the data in {self.path or data_dir} gives split fingerprint {found}, but study {study!r} was "
            f"made with {self.fingerprint}: {fix}"
        )

    def mismatch(self, other: StudySpec) -> tuple[str, Any, Any] | None:
        """The first comparable setting that differs: (name, ours, theirs); None if comparable."""
        for key in self.COMPARABLE:
            if getattr(self, key) != getattr(other, key):
                return key, getattr(self, key), getattr(other, key)
        return None


def read_spec(study: StudyAttrs) -> StudySpec | None:
    raw = study.attr(SPEC, None)
    return StudySpec.from_attr(raw) if raw else None


def write_spec(study: StudyAttrs, spec: StudySpec) -> None:
    study.set_attr(SPEC, spec.to_attr())
