"""An Optuna study store behind a typed handle: which studies it holds, loading and creating them,
the store lock and the heartbeat settings. The rest of hpo reaches Optuna's storage only through
`StudyStore` and the `StudyHandle`s it builds; the RDB storage object never leaves this package."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna
from optuna.study import StudyDirection

from hpo.errors import StudyError
from hpo.stores.locks import store_lock
from hpo.stores.optuna.storage import METRIC, open_storage
from hpo.stores.optuna.study import StudyHandle
from hpo.stores.optuna.trial import writing


class StudyStore:
    """One study store (SQLite file or database server), opened once per process and command."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """`create`: make the store if it does not exist (a search); else it must exist."""
        self._storage = open_storage(url, create=create)
        self.url: str = str(self._storage.url)  # absolute; may hold a password: show it redacted

    @property
    def heartbeat_interval(self) -> int:
        """Seconds between a live trial's heartbeats (HPO_HEARTBEAT_S)."""
        return int(self._storage.heartbeat_interval or 1)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive for the block across every process sharing this store (`hpo.stores.locks`)."""
        with store_lock(url=self.url, engine=self._storage.engine):
            yield

    def names(self) -> list[str]:
        return sorted(s.study_name for s in self._storage.get_all_studies())

    def others(self, *, exclude: str, limit: int) -> list[StudyHandle]:
        """At most `limit` of the store's studies besides `exclude`, the latest created last (the
        storage lists them in creation order)."""
        names = [s.study_name for s in self._storage.get_all_studies() if s.study_name != exclude]
        return [self._handle(optuna.load_study(study_name=n, storage=self._storage)) for n in names[-limit:]]

    def load(self, name: str) -> StudyHandle:
        """The study `name`; a clear error naming the store's studies when it has none of that name."""
        names = self.names()
        if name not in names:
            known = ", ".join(names) or "none yet"
            raise StudyError(
                f"no study named {name!r} in this store (studies: {known}); check --study/--storage"
            )
        return self._handle(optuna.load_study(study_name=name, storage=self._storage))

    def create_or_resume(
        self,
        *,
        name: str,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        minimized: tuple[str, ...] = (),
    ) -> StudyHandle:
        """The study `name`, created if this store has none: maximizing METRIC, then minimizing
        each of `minimized` (attribute names, e.g. link.PARAMETERS) when given."""
        study = optuna.create_study(
            storage=self._storage,
            study_name=name,
            directions=[StudyDirection.MAXIMIZE, *[StudyDirection.MINIMIZE] * len(minimized)],
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        if study.metric_names is None:  # optuna-dashboard then names the metric, not "Objective 0"
            with writing("name the objectives"):
                study.set_metric_names([METRIC, *minimized][: len(study.directions)])
        return self._handle(study)

    def _handle(self, study: optuna.Study) -> StudyHandle:
        return StudyHandle(study, self._storage, lock=self.lock)
