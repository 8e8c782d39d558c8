"""One study across processes and hosts (here, on one machine): host identity in seeds and trials,
trials of a dead host failed and re-run before every claim, the coordinator's --create-only,
--devices, and store URLs (drivers, passwords)."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

from hpo.config import SearchConfig
from hpo.errors import ConfigError
from hpo.search.workers import worker_devices
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna.private import CACHE_CALLS
from hpo.stores.optuna.storage import ResilientStorage, _server_url, heartbeat_settings
from hpo.stores.owner import host_seed
from hpo.stores.spec import read_spec
from tests.helpers import STORE, assert_one_line_error, hpo, open_study, search


def test_host_identity_is_mixed_into_sampler_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = {}
    for host in ("a", "b", "a"):
        monkeypatch.setenv("HPO_HOST_ID", host)
        seeds.setdefault(host, set()).add(host_seed(0))
    assert len(seeds["a"]) == 1 and seeds["a"] != seeds["b"]


def test_heartbeat_is_tunable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert heartbeat_settings() == (30, 120)
    monkeypatch.setenv("HPO_HEARTBEAT_S", "1")
    monkeypatch.setenv("HPO_GRACE_S", "3")
    assert heartbeat_settings() == (1, 3)
    monkeypatch.setenv("HPO_GRACE_S", "1")
    with pytest.raises(ConfigError, match="must exceed"):
        heartbeat_settings()
    monkeypatch.setenv("HPO_GRACE_S", "soon")
    with pytest.raises(ConfigError, match="whole number of seconds"):
        heartbeat_settings()


def test_a_dead_hosts_trial_is_failed_and_rerun_so_the_target_is_met_exactly(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial claimed by host 'ghost', which then died (its heartbeat stopped): the survivors
    do not stop one short; they fail it, close its MLflow run and re-run its parameters."""
    monkeypatch.setenv("HPO_HEARTBEAT_S", "1")
    monkeypatch.setenv("HPO_GRACE_S", "2")
    search(data_dir, trials=2, epochs=1)
    study = open_study("s")
    ghost = study.claim(target=3, attrs={"host": "ghost", "pid": 1}, sampler="random", seed=0)
    assert ghost is not None
    params = ghost.suggest.suggest_float("lr_sgd", 1e-3, 0.5, log=True)
    run_id = MlflowStore().start_run(experiment_id=MlflowStore().experiment("s"), name="trial-0002", tags={})
    ghost.set_attrs(**{link.RUN_ID: run_id})
    time.sleep(2.5)  # longer than the grace period: the ghost is dead
    out = search(data_dir, trials=3, epochs=1)
    assert (out.counts.finished, out.counts.failed, out.counts.running) == (3, 1, 0)
    rows = {r.number: r for r in open_study("s").rows()}
    assert (
        rows[ghost.number].state == "FAIL"
        and "no heartbeat from ghost" in rows[ghost.number].attrs[link.FAIL_REASON]
    )
    (retry,) = [r for r in rows.values() if r.attrs.get(link.RETRY_OF) == ghost.number]
    assert retry.state in ("COMPLETE", "PRUNED") and retry.params["lr_sgd"] == params
    assert MlflowStore().run_status(run_id) == "KILLED"


def test_create_only_makes_the_study_and_runs_nothing(workdir: Path, data_dir: Path) -> None:
    args = [
        "search",
        "--data-dir",
        data_dir,
        "--val-size",
        1000,
        "--model",
        "mlp",
        "--trials",
        2,
        "--epochs",
        1,
    ]
    code, out, err = hpo(*args, "--create-only", "--device", "cpu")
    assert code == 0, out + err
    assert (
        "is ready (target 2" in out and "Each worker" in out and "--create-only" not in out.split("runs:")[-1]
    )
    study = open_study("mnist-mlp")
    assert read_spec(study) is not None and study.counts().finished == 0
    assert [r.state for r in study.rows()] == ["WAITING", "WAITING"]  # warm start, for the workers
    parent = link.parent_run_id(study)
    assert MlflowStore().run_status(parent) == "FINISHED"
    code, out, err = hpo(*args, "--device", "cpu")
    assert code == 0 and open_study("mnist-mlp").counts().finished == 2, out + err


def test_devices_spread_workers_and_need_jobs() -> None:
    assert worker_devices(device="cpu", devices=()) == ["cpu"]
    assert worker_devices(device="auto", devices=("cuda:0", "cuda:1")) == ["cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match="--jobs"):
        SearchConfig(study="s", storage=STORE, devices=("cpu", "cpu"))
    assert_one_line_error(*hpo("search", "--jobs", 2, "--devices", "cuda:7", "--trials", 1), "cuda:7")


def test_postgresql_urls_take_psycopg_and_never_show_a_password(workdir: Path) -> None:
    assert _server_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert _server_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    url = "postgresql://me:s3cret@127.0.0.1:1/none"
    code, out, err = hpo("studies", "--storage", url)
    assert code != 0 and "s3cret" not in out + err and "me:***@" in err


def test_a_store_password_reaches_no_mlflow_param_tag_or_output(
    workdir: Path, data_dir: Path, postgres_url: str
) -> None:
    """The throwaway cluster trusts every local connection, so any password is accepted: the
    search runs for real with one in its URL, which must then appear nowhere."""
    url = postgres_url.replace("postgres@", "postgres:s3cret-pw@")
    study = f"pw-{time.monotonic_ns()}"
    code, out, err = hpo(
        "search", "--storage", url, "--study", study, "--data-dir", data_dir, "--val-size", 1000,
        "--model", "mlp", "--trials", 1, "--epochs", 1, "--device", "cpu", "--no-warm-start",
    )  # fmt: skip
    assert code == 0, out + err
    assert "s3cret-pw" not in out + err
    store = MlflowStore()
    experiment = store.find_experiment(study)
    assert experiment is not None
    for run in store.runs(experiment):
        recorded = [*run.params.values(), *run.tags.values()]
        assert not [value for value in recorded if "s3cret-pw" in value], run.name
    assert any("***@" in run.tags.get("command", "") for run in store.runs(experiment))


def test_every_storage_call_of_optunas_cache_layer_is_retried() -> None:
    """A Study reaches its storage through optuna's _CachedStorage, which also calls private
    methods of it: each one must wait out a database restart like the public ones (see
    test_distributed.py for the restart itself). Read from the installed optuna's source."""
    spec = importlib.util.find_spec("optuna.storages._cached_storage")
    assert spec is not None and spec.origin is not None
    called = set(re.findall(r"_backend\.(_[a-z_]+)\(", Path(spec.origin).read_text()))
    assert called and called <= set(CACHE_CALLS), f"not retried: {sorted(called - set(CACHE_CALLS))}"
    for name in CACHE_CALLS:  # each is wrapped, not the RDBStorage method itself
        assert getattr(ResilientStorage, name) is not getattr(ResilientStorage.__mro__[1], name)
