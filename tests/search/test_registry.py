"""MLflow models of trials and `hpo best --register`: a registered version loads with
`mlflow.pyfunc` in a fresh process and predicts raw pixels with the trial's accuracy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo.config import DataConfig
from hpo.core.data import load_train_val
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import (
    assert_one_line_error,
    env_for_subprocess,
    free_port,
    hpo,
    open_study,
    post_when_up,
    predict_in_fresh_process,
    printed,
    search,
)
from tests.synthetic import VAL_SIZE


def raw_val_pixels(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The validation split back on the 0..255 scale: (N, 28, 28) float32, labels (N,)."""
    data = load_train_val(DataConfig(data_dir=str(data_dir), val_size=VAL_SIZE), device=torch.device("cpu"))
    norm = data.normalization
    pixels = (data.val.x * norm.std + norm.mean) * 255.0
    return pixels.reshape(-1, 28, 28).numpy(), data.val.y.numpy()


def test_registered_best_model_predicts_raw_pixels_in_a_fresh_process(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=2, epochs=2)
    best = open_study("s").best()
    assert best is not None and best.value is not None
    run = MlflowStore().run(link.run_id(best))
    assert run.tags[link.MODEL_URI].startswith("models:/m-"), run.tags  # logged when the search ended
    others = [t for t in open_study("s").rows() if t != best]
    assert others and all(link.MODEL_URI not in MlflowStore().run(link.run_id(t)).tags for t in others)
    code, out, err = hpo("best", "--register", "digits")
    assert code == 0, out + err
    assert "registered 'digits' version 1" in out and "models:/digits/1" in out
    pixels, labels = raw_val_pixels(data_dir)
    answer = predict_in_fresh_process("models:/digits/1", pixels=pixels, labels=labels)
    assert answer["shape"] == [len(labels), 10]
    assert np.allclose(answer["row_sums"], 1.0, atol=1e-5)  # probabilities
    assert abs(float(answer["accuracy"]) - best.value) <= 0.001  # the trial's validation accuracy
    version = MlflowStore().client.get_model_version("digits", "1")
    assert version.tags["study"] == "s" and version.tags["trial_number"] == str(best.number)
    assert version.tags["test_accuracy"] == "not evaluated" and "Validation accuracy" in version.description


def test_a_trial_logged_before_models_were_is_registered_from_its_checkpoint(
    workdir: Path, data_dir: Path
) -> None:
    search(data_dir, trials=1, epochs=1)
    best = open_study("s").best()
    assert best is not None
    store = MlflowStore()
    store.client.delete_tag(link.run_id(best), link.MODEL_URI)
    code, out, err = hpo("best", "--register", "digits")
    assert code == 0, out + err
    assert store.run(link.run_id(best)).tags[link.MODEL_URI].startswith("models:/m-")
    code, out, err = hpo("best", "--register", "digits")  # again: a second version
    assert code == 0 and "version 2" in out, out + err


def test_a_bad_model_name_is_one_clear_line(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1, epochs=1)
    assert_one_line_error(*hpo("best", "--register", "no/slashes"), "--register", "letters, digits")


@pytest.mark.slow
def test_the_printed_serving_commands_run_as_printed_from_any_folder(
    workdir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Both lines work pasted into a fresh shell elsewhere (they failed without the tracking URI,
    and left a stray mlflow.db), and the served model takes 0..1 pixels as well as 0..255."""
    search(data_dir, trials=2, epochs=2)
    best = open_study("s").best()
    assert best is not None and best.value is not None
    code, out, err = hpo("best", "--register", "digits")
    assert code == 0, out + err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pixels, labels = raw_val_pixels(data_dir)
    np.save(elsewhere / "pixels.npy", pixels)
    env = {k: v for k, v in env_for_subprocess().items() if k != "MLFLOW_TRACKING_URI"}
    script = printed(out, "in Python:") + (
        "\nimport json, numpy as np\npixels = np.load('pixels.npy')\n"
        "print(json.dumps([model.predict(p).tolist() for p in (pixels, pixels / 255.0)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    raw, unit = (np.array(p) for p in json.loads(done.stdout.strip().splitlines()[-1]))
    assert np.allclose(raw, unit, atol=1e-4)  # the same answer on either scale, to float rounding
    assert abs(float(np.mean(raw.argmax(1) == labels)) - best.value) <= 0.001
    port = free_port()
    serve = printed(out, "serve it:").replace("--port 5001", f"--port {port}")
    server = subprocess.Popen(serve, shell=True, cwd=elsewhere, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        answer = post_when_up(f"http://127.0.0.1:{port}", {"inputs": (pixels[:8] / 255.0).tolist()})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert np.allclose(answer["predictions"], raw[:8], atol=1e-4)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["pixels.npy"]  # no stray store
