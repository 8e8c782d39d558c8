"""End-to-end checks on the real datasets in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import hpo, open_study

pytestmark = pytest.mark.real_data


def test_train_mlp_on_real_mnist_reaches_97(workdir: Path, real_data: Path, device: str) -> None:
    code, out, err = hpo(
        "train",
        "--dataset",
        "mnist",
        "--model",
        "mlp",
        "--hidden",
        "300,100",
        "--optimizer",
        "sgd",
        "--lr",
        0.05,
        "--momentum",
        0.9,
        "--batch-size",
        128,
        "--epochs",
        2,
        "--data-dir",
        real_data,
        "--device",
        device,
        "-q",
    )
    assert code == 0, out + err
    from hpo.stores.mlflow import MlflowStore

    store = MlflowStore()
    (run,) = store.runs(store.experiment("train"))
    history = store.metric_history(run.run_id, "val_accuracy")
    assert len(history) == 2 and max(v for _, v in history) >= 0.97


def test_search_then_predict_real_digits(workdir: Path, real_data: Path, device: str) -> None:
    import numpy as np
    from PIL import Image

    Path("space.toml").write_text(
        'mlp_layers = 1\nmlp_width = [256]\noptimizer = "adam"\nlr = [0.001]\nbatch_size = [128]\n'
        'schedule = "none"\ndropout = [0.0]\nbatch_norm = [false]\nactivation = "relu"\n'
        "weight_decay = [1e-6]\n"
    )
    code, out, err = hpo(
        "search",
        "--data-dir",
        real_data,
        "--model",
        "mlp",
        "--space",
        "space.toml",
        "--trials",
        1,
        "--epochs",
        2,
        "--device",
        device,
        "-q",
    )
    assert code == 0, out + err
    raw = real_data / "MNIST" / "raw"
    images = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    paths = []
    for i in range(10):
        Image.fromarray(images[i]).save(f"digit{i}.png")
        paths.append(f"digit{i}.png")
    # A black-on-white "drawing": big, off-centre, on a wide white page.
    page = Image.new("L", (420, 300), 255)
    page.paste(Image.fromarray(255 - images[0]).resize((200, 200)), (30, 60))
    page.save("drawing.png")
    code, out, err = hpo("predict", *paths, "drawing.png", "--top", 3)
    assert code == 0, out + err
    cells = [[c.strip() for c in line.split("│")] for line in out.splitlines() if "│" in line]
    rows = {c[0].split()[0]: c[1] for c in cells}
    right = sum(rows[f"digit{i}.png"] == str(labels[i]) for i in range(10))
    assert right >= 9, out
    assert rows["drawing.png"] == str(labels[0]), out


def test_engine_matches_seeds_dataloader_accuracy(real_data: Path) -> None:
    """No regression from the speed-ups: same net, optimizer, epochs and batch size as the seeds'
    DataLoader + ToTensor loop reach the same validation accuracy (within run-to-run noise)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from hpo.config import DataConfig, ModelConfig, OptimConfig
    from hpo.core.data import load_train_val, split_indices
    from hpo.core.engine import fit
    from hpo.core.models import build_model

    cfg = ModelConfig(hidden=(300, 100))
    torch.manual_seed(0)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    full = datasets.MNIST(str(real_data), train=True, download=False, transform=tf)
    train_idx, val_idx = split_indices(n=len(full), val_size=10_000, seed=0)
    model = build_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x, y in DataLoader(Subset(full, train_idx.tolist()), batch_size=128, shuffle=True):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(x).argmax(1) == y).sum())
            for x, y in DataLoader(Subset(full, val_idx.tolist()), batch_size=2000)
        )
    seeds_acc = correct / len(val_idx)

    torch.manual_seed(0)
    data = load_train_val(DataConfig(data_dir=str(real_data)), device=torch.device("cpu"))
    result = fit(
        model=build_model(cfg),
        data=data,
        optim=OptimConfig(lr=0.05, momentum=0.9),
        epochs=1,
        batch_size=128,
        seed=0,
    )
    assert abs(result.history[0].val_accuracy - seeds_acc) < 0.01, (result.history[0].val_accuracy, seeds_acc)
    assert seeds_acc > 0.95


def _canvas_png(digit: np.ndarray, path: str) -> None:
    """What a drawing canvas exports: a black stroke on a transparent background, large, off-centre."""
    from PIL import Image

    stroke = np.asarray(Image.fromarray(digit).resize((220, 220), Image.Resampling.BICUBIC))
    rgba = np.zeros((300, 400, 4), dtype=np.uint8)
    rgba[50:270, 140:360, 3] = stroke
    Image.fromarray(rgba).save(path)


def _grey_paper_jpeg(digit: np.ndarray, path: str, rng: np.random.Generator) -> None:
    """A phone photo of pencil on grey paper under a lamp, stored sideways with an EXIF rotation."""
    from PIL import Image, ImageFilter

    ink = (
        np.asarray(Image.fromarray(digit).resize((240, 240), Image.Resampling.BICUBIC), dtype=np.float64)
        / 255
    )
    page = 165 - np.linspace(0, 35, 320)[None, :] + rng.normal(0, 5, (320, 320))
    page[40:280, 30:270] -= 100 * ink  # soft grey ink, never black
    photo = Image.fromarray(page.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to view"
    photo.transpose(Image.Transpose.ROTATE_270).save(path, exif=exif, quality=85)


def test_predict_drawings_and_photos_with_a_98_percent_model(
    workdir: Path, real_data: Path, device: str
) -> None:
    Path("space.toml").write_text(
        'cnn_blocks = 2\ncnn_channels = [32]\ncnn_kernel = [3]\ncnn_fc_width = [128]\nactivation = "relu"\n'
        'dropout = [0.1]\nbatch_norm = [true]\noptimizer = "adam"\nlr = [0.002]\nweight_decay = [1e-5]\n'
        'schedule = "none"\nbatch_size = [128]\naugment = "affine"\nlabel_smoothing = [0.0]\n'
    )
    args = ["--data-dir", real_data, "--model", "cnn", "--space", "space.toml", "--device", device]
    code, out, err = hpo("search", *args, "--trials", 1, "--epochs", 2, "--pruner", "none", "-q")
    assert code == 0, out + err

    best = open_study("mnist-cnn").best()
    assert best is not None and (best.value or 0) >= 0.98
    raw = real_data / "MNIST" / "raw"
    images = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    rng = np.random.default_rng(0)
    for i in range(10):
        _canvas_png(images[i], f"canvas{i}.png")
        _grey_paper_jpeg(images[i], f"photo{i}.jpg", rng)
    names = [f"canvas{i}.png" for i in range(10)] + [f"photo{i}.jpg" for i in range(10)]
    code, out, err = hpo("predict", *names, "--show-input", "seen.png")
    assert code == 0, out + err
    cells = [[c.strip() for c in line.split("│")] for line in out.splitlines() if "│" in line]
    rows = {c[0].split()[0]: c[1] for c in cells}
    for kind in ("canvas", "photo"):
        right = sum(
            rows[n] == str(labels[int(n[len(kind) : n.index(".")])]) for n in names if n.startswith(kind)
        )
        assert right >= 9, (kind, out)


def test_registered_model_predicts_real_test_digits_with_the_lockbox_accuracy(
    workdir: Path, real_data: Path, device: str
) -> None:
    from hpo.stores import link
    from tests.helpers import predict_in_fresh_process

    Path("space.toml").write_text(
        'mlp_layers = 1\nmlp_width = [128]\noptimizer = "adam"\nlr = [0.001]\nbatch_size = [256]\n'
        'schedule = "none"\ndropout = [0.0]\nbatch_norm = [false]\nactivation = "relu"\n'
        'weight_decay = [1e-6]\naugment = "none"\nlabel_smoothing = [0.0]\n'
    )
    argv = ["--data-dir", real_data, "--device", device]
    code, out, err = hpo(
        "search", *argv, "--model", "mlp", "--space", "space.toml", "--trials", 1, "--epochs", 1
    )
    assert code == 0, out + err
    code, out, err = hpo("best", *argv, "--evaluate-test", "--register", "mnist-mlp")
    assert code == 0, out + err
    (record,) = link.lockbox_records(open_study("mnist-mlp"))
    raw = real_data / "MNIST" / "raw"
    pixels = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8).astype(np.int64)
    answer = predict_in_fresh_process("models:/mnist-mlp/1", pixels=pixels, labels=labels)
    assert abs(float(answer["accuracy"]) - record["accuracy"]) <= 0.001, (answer, record["accuracy"])
    assert record["accuracy"] > 0.9
