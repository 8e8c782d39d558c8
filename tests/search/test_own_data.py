"""A user's own images (`--data`): a folder of class folders of 3-channel 32x32 PNGs runs search ->
best --evaluate-test -> register -> serve (a fresh process) -> predict; an .npz file trains; bad
data is one clear line and writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import (
    assert_one_line_error,
    env_for_subprocess,
    free_port,
    hpo,
    open_study,
    post_when_up,
    predict_in_fresh_process,
    printed,
)

CLASSES = ("amber", "blue", "green", "grey", "red")  # each class a colour: learnable in an epoch
COLOURS = ((255, 191, 0), (0, 0, 255), (0, 200, 0), (128, 128, 128), (230, 0, 0))


def colour_images(n: int, *, seed: int, size: tuple[int, int] = (32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 (H, W, 3) images per class: a noisy square of the class's colour on a dark ground."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, colour in enumerate(COLOURS):
        for _ in range(n):
            a = rng.integers(0, 60, (*size, 3)).astype(np.int64)
            top, left = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
            a[top : top + size[0] // 2, left : left + size[1] // 2] = np.array(colour) - rng.integers(
                0, 40, 3
            )
            images.append(a.clip(0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def write_folder(root: Path, *, n: int = 30, seed: int = 0) -> Path:
    images, labels = colour_images(n, seed=seed)
    for i, (a, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(folder / f"{i:04d}.png")
    return root


SEARCH = ("--trials", 2, "--epochs", 2, "--model", "cnn", "--device", "cpu", "--study", "own")


def test_own_rgb_folder_end_to_end(workdir: Path, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "colours")
    code, out, err = hpo("search", "--data", folder, *SEARCH)
    assert code == 0, out + err
    best = open_study("own").best()
    assert best is not None and best.value is not None
    code, out, err = hpo("best", "--evaluate-test")
    assert code == 0 and "test" in out.lower(), out + err
    code, out, err = hpo("best", "--register", "colours")
    assert code == 0, out + err
    assert "input: float32 (N, 3, 32, 32) pixels" in out and "output: (N, 5) probabilities" in out, out
    pixels, labels = colour_images(4, seed=9)
    chw = pixels.transpose(0, 3, 1, 2).astype(np.float32)  # (N, 3, 32, 32), 0..255
    answer = predict_in_fresh_process("models:/colours/1", pixels=chw, labels=labels)
    assert answer["shape"] == [len(labels), len(CLASSES)]
    assert np.allclose(answer["row_sums"], 1.0, atol=1e-5)
    for i in (0, 4, 8):
        Image.fromarray(pixels[i]).resize((64, 48)).save(f"photo{i}.png")  # any size: resized as trained
    code, out, err = hpo("predict", "photo0.png", "photo4.png", "photo8.png", "--top", 1)
    assert code == 0, out + err
    rows = [line for line in out.splitlines() if line.strip().startswith("photo")]
    assert len(rows) == 3 and all(any(name in row for name in CLASSES) for row in rows), out


def test_an_npz_file_trains_any_family(workdir: Path, tmp_path: Path) -> None:
    images, labels = colour_images(12, seed=1, size=(16, 20))
    np.savez(tmp_path / "shapes.npz", x=images, y=labels, class_names=np.array(CLASSES))
    code, out, err = hpo("train", "--data", tmp_path / "shapes.npz", "--model", "resnet", "--epochs", 1)
    assert code == 0, out + err


def bad_folder(tmp_path: Path, fault: str) -> Path:
    root = write_folder(tmp_path / "bad", n=8)
    if fault == "empty class":
        (root / "violet").mkdir()
    elif fault == "one class":
        for name in CLASSES[1:]:
            for f in (root / name).iterdir():
                f.unlink()
            (root / name).rmdir()
    elif fault == "few images":
        for f in sorted((root / "red").iterdir())[2:]:
            f.unlink()
    elif fault == "mixed sizes":
        Image.new("RGB", (20, 20)).save(root / "red" / "small.png")
    elif fault == "unreadable":
        (root / "red" / "broken.png").write_bytes(b"not a png")
    elif fault == "not an image":
        (root / "red" / "notes.txt").write_text("hello")
    return root


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("empty class", "violet is empty"),
        ("one class", "one class folder (amber)"),
        ("few images", "'red' has 2 image(s), fewer than"),
        ("mixed sizes", "--image-size"),
        ("unreadable", "broken.png is not an image"),
        ("not an image", "notes.txt is not a PNG or JPEG"),
    ],
)
def test_bad_data_is_one_clear_line_and_writes_nothing(
    workdir: Path, tmp_path: Path, fault: str, needle: str
) -> None:
    root = bad_folder(tmp_path, fault)
    assert_one_line_error(*hpo("search", "--data", root, *SEARCH), needle)
    assert not Path("studies/hpo.db").exists()


def test_mixed_sizes_train_with_image_size(workdir: Path, tmp_path: Path) -> None:
    root = bad_folder(tmp_path, "mixed sizes")
    code, out, err = hpo("train", "--data", root, "--image-size", "24x28", "--model", "cnn", "--epochs", 1)
    assert code == 0, out + err


def test_train_and_test_folders_keep_each_image_with_its_label(tmp_path: Path) -> None:
    """PATH/train/CLASS and PATH/test/CLASS: each split's images stay with their class (a class's
    colour is its label), and the test split is the test folder's, not a carved one."""
    import torch

    from hpo.config import DataConfig
    from hpo.core.data import open_dataset

    write_folder(tmp_path / "split" / "train", n=6, seed=0)
    write_folder(tmp_path / "split" / "test", n=3, seed=1)
    dataset = open_dataset(DataConfig(dataset="split", path=str(tmp_path / "split")))
    assert dataset.spec.classes == CLASSES and dataset.spec.shape == (3, 32, 32)
    for train, n in ((True, 6), (False, 3)):
        images, labels = dataset.read(train, False)
        assert len(labels) == n * len(CLASSES)
        brightest = images.amax(dim=(2, 3)).float()  # (N, 3): the class's colour shows in its square
        for i, label in enumerate(labels.tolist()):
            expected = torch.tensor(COLOURS[label], dtype=torch.float32)
            assert (brightest[i] - expected).abs().max() <= 60, (train, i, label, brightest[i])


def test_changed_files_change_the_fingerprint_and_the_study_refuses_them(
    workdir: Path, tmp_path: Path
) -> None:
    """The split of a user's folder is fingerprinted as MNIST's is: one image changed, and the
    study will not go on with it (nor will its test look)."""
    folder = write_folder(tmp_path / "colours", n=8)
    code, out, err = hpo("search", "--data", folder, *SEARCH)
    assert code == 0, out + err
    first = sorted((folder / "red").iterdir())[0]
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(first)
    assert_one_line_error(*hpo("search", "--data", folder, *SEARCH), "fingerprint")
    assert_one_line_error(*hpo("best", "--evaluate-test"), "its files changed since")


@pytest.mark.slow
def test_own_rgb_model_is_served_over_http_as_printed(workdir: Path, tmp_path: Path) -> None:
    """`hpo best --register` prints a serving command; the server it starts answers (N, 3, 32, 32)
    pixels with 5-class probabilities."""
    folder = write_folder(tmp_path / "colours")
    assert hpo("search", "--data", folder, *SEARCH)[0] == 0
    code, out, err = hpo("best", "--register", "colours")
    assert code == 0, out + err
    pixels, _ = colour_images(2, seed=5)
    chw = pixels.transpose(0, 3, 1, 2).astype(np.float32)
    port = free_port()
    serve = printed(out, "serve it:").replace("--port 5001", f"--port {port}")
    env = {k: v for k, v in env_for_subprocess().items() if k != "MLFLOW_TRACKING_URI"}
    server = subprocess.Popen(serve, shell=True, cwd=tmp_path, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        answer = post_when_up(f"http://127.0.0.1:{port}", {"inputs": chw.tolist()})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    probabilities = np.array(answer["predictions"])
    assert probabilities.shape == (len(chw), len(CLASSES))
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
