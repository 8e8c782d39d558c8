"""Process-wide configuration, applied once by the CLI root (`hpo.cli.main`) and by the test
suite's conftest. Importing any `hpo` module changes nothing: no environment variable, logger
level, warnings filter or matplotlib backend (tests/unit/test_imports.py proves it).

Matplotlib needs no backend: `hpo.results.figures` draws on `matplotlib.figure.Figure` objects, which
render to files without pyplot's global state."""

from __future__ import annotations

import logging
import os
import warnings

_QUIET_LOGGERS = ("mlflow", "alembic", "alembic.runtime.migration", "sqlalchemy")


def configure() -> None:
    """Quiet third-party logging and warnings, and install the SQLite settings. Idempotent."""
    from hpo.stores import optuna as optuna_store
    from hpo.stores import sqlite

    # Read by mlflow when it is imported (it configures its loggers then): no progress bars or
    # INFO chatter on the user's terminal. setdefault: a user's own choice wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Against a tracking server, MLflow prints "View run ... at: URL" for every closed run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in _QUIET_LOGGERS:  # in case mlflow was imported before configure() ran
        logging.getLogger(name).setLevel(logging.WARNING)
    # torch 2.11's pt2 loader (MLflow loads the logged model once to check its input example)
    # warns about its own read-only buffer; seen in a search's output on the GPU machine.
    warnings.filterwarnings("ignore", message="The given buffer is not writable", category=UserWarning)
    optuna_store.configure()
    sqlite.install()
