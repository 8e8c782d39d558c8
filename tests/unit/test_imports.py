"""No side effects on import: importing every `hpo` module in a fresh interpreter changes no
environment variable, logger level, warnings filter or matplotlib backend."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hpo

PROBE = textwrap.dedent(
    """
    import importlib, logging, os, pkgutil, warnings
    # Third-party libraries first: what they do on import is theirs, not ours.
    import matplotlib, mlflow, numpy, optuna, PIL, rich, sqlalchemy, torch, torchvision, typer
    import matplotlib.figure, mlflow.artifacts, torchvision.datasets

    def snapshot():
        # Loggers created later by library submodules start at NOTSET: only set levels count.
        levels = {n: l.level for n, l in logging.Logger.manager.loggerDict.items()
                  if isinstance(l, logging.Logger) and l.level}
        return (dict(os.environ), levels, logging.getLogger().level, list(warnings.filters),
                matplotlib.rcParams._get_backend_or_none(), sqlalchemy.event.contains(
                    sqlalchemy.engine.Engine, "connect", importlib.import_module(SQLITE)._configure))

    SQLITE = 'hpo.stores.sqlite'
    before = snapshot()
    import hpo
    names = [m.name for m in pkgutil.walk_packages(hpo.__path__, "hpo.")]
    for name in names:
        importlib.import_module(name)
    after = snapshot()
    for label, a, b in zip(("env", "loggers", "root", "warnings", "backend", "sqlite hook"), before, after):
        if a != b:
            keys = set(a) | set(b) if isinstance(a, dict) else ()
            diff = {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)} or (a, b)
            raise SystemExit(f"{label} changed: {diff}")
    print(len(names), "modules")
    """
)


def test_importing_every_module_changes_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[0]) >= 25


def test_configure_is_what_sets_them() -> None:
    probe = "import logging, os; from hpo.stores.runtime import configure; configure(); import optuna; "
    probe += "print(os.environ['MLFLOW_LOGGING_LEVEL'], optuna.logging.get_verbosity() == logging.WARNING)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["WARNING", "True"], done.stderr[-2000:]


@pytest.mark.parametrize(
    ("package", "home"),
    [
        ("optuna", "stores/optuna/"),
        ("mlflow", "stores/mlflow/"),
        ("sklearn", "results/baselines.py"),
        ("ray", "search/ray_workers.py"),
        ("matplotlib", "results/figures.py"),
        ("typer", "cli/"),
        ("rich", "cli/"),
    ],
)
def test_each_third_party_dependency_lives_in_one_home(package: str, home: str) -> None:
    root = Path(hpo.__file__).parent
    pattern = re.compile(rf"^\s*(import|from) {package}\b", re.MULTILINE)
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if pattern.search(p.read_text()))
    assert importers and all(name.startswith(home) for name in importers), importers


def run_hpo(argv: list[str], *, cwd: Path) -> tuple[str, int, list[str]]:
    """`hpo ARGV` in a fresh interpreter: (its output and error, exit code, modules it loaded of
    torch and mlflow)."""
    probe = (
        f"import sys, runpy; sys.argv = ['hpo', *{argv!r}]\n"
        "code = 0\ntry:\n    runpy.run_module('hpo', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print('PROBE', code, [m for m in ('torch', 'mlflow') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=cwd)
    head, _, tail = done.stdout.rpartition("PROBE ")
    assert tail, done.stdout[-2000:] + done.stderr[-2000:]
    code, loaded = tail.split(" ", 1)
    return head + done.stderr, int(code), ast.literal_eval(loaded)


@pytest.mark.parametrize(
    ("command", "shown", "unused"),
    [
        ("studies", "Studies", {"torch", "mlflow"}),
        ("trials", "Trials of 's'", {"torch", "mlflow"}),
        ("best", "best trial", {"torch"}),
        ("check", "both stores agree", {"torch"}),
    ],
)
def test_reading_a_store_loads_only_what_it_needs(
    searched: Path, command: str, shown: str, unused: set[str]
) -> None:
    """`hpo studies` and `hpo trials` read only the study store, `hpo best` (without
    --evaluate-test) and `hpo check` the two stores: without torch and MLflow the first two answer
    in about a second instead of four, and without torch the other two in under three."""
    out, code, loaded = run_hpo([command], cwd=Path.cwd())
    assert code == 0 and shown in out, out[-2000:]
    assert not unused & set(loaded), loaded


@pytest.mark.parametrize("args", [["--trials", "0"], ["--space", "missing.toml"], ["--sampler", "grid"]])
def test_bad_search_input_is_refused_before_torch_loads(tmp_path: Path, args: list[str]) -> None:
    """A mistyped `hpo search` is refused in half a second, not after three seconds of imports."""
    out, code, loaded = run_hpo(["search", *args], cwd=tmp_path)
    assert code == 2 and "error:" in out and loaded == [], out[-2000:]
