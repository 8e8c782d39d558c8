"""No command shows a store URL's password, whatever it prints: the CLI's output streams redact
every `scheme://user:PASSWORD@host` (before, `hpo studies` printed it in its table's title)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import hpo
from tests.pg import Cluster
from tests.synthetic import VAL_SIZE

PASSWORD = "S3cretPW"


def with_password(url: str) -> str:
    """The cluster trusts every local connection, so any password is accepted: here, one to hide."""
    return url.replace("postgresql+psycopg://postgres@", f"postgresql+psycopg://postgres:{PASSWORD}@")


@pytest.mark.slow
def test_no_command_prints_a_password(workdir: Path, data_dir: Path, pg_cluster: Cluster) -> None:
    storage = with_password(pg_cluster.createdb("pw_optuna"))
    tracking = with_password(pg_cluster.createdb("pw_mlflow"))
    stores = ["--storage", storage, "--tracking-uri", tracking]
    Path("space.toml").write_text("mlp_layers = 1\nmlp_width = [32]\n")
    data = ["--data-dir", data_dir, "--val-size", VAL_SIZE]
    commands = [
        ["search", *data, "--trials", 2, "--epochs", 1, "--model", "mlp", "--space", "space.toml", *stores],
        ["studies", "--storage", storage],
        ["studies"],  # HPO_STORAGE below
        ["trials", "--storage", storage],
        ["best", *stores],
        ["check", *stores],
        ["report", "--out", "r", *stores],
        ["ui", "--dry-run", "--tracking-uri", tracking],
        ["ui", "--optuna", "--dry-run", "--storage", storage],
        ["baselines", *data, "--only", "logistic", *stores],
        ["train", *data, "--epochs", 1, "--hidden", 16, "--tracking-uri", tracking],
        ["best", "--study", "ghost", *stores],  # an error line
        ["search", *data, "--storage", storage.replace("/pw_optuna", "/none")],  # an error naming the URL
    ]
    for command in commands:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("HPO_STORAGE", storage)
            code, out, err = hpo(*command)
        assert PASSWORD not in out + err, (command, out + err)
        assert code == 0 or "error:" in err, (command, out + err)
        if command[0] == "studies":
            assert "postgres:***@" in out
