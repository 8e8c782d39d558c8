from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from hpo.config import OPTIMIZERS, SCHEDULES, DataConfig, ModelConfig, OptimConfig
from hpo.core.data import load_train_val
from hpo.core.device import check_precision, resolve_device
from hpo.core.engine import EpochMetrics, evaluate, fit
from hpo.core.models import build_model
from hpo.errors import ConfigError, DeviceError
from tests.synthetic import VAL_SIZE


@pytest.fixture(scope="module")
def data(synthetic_root: Path, device: str):  # type: ignore[no-untyped-def]
    cfg = DataConfig(data_dir=str(synthetic_root), val_size=VAL_SIZE)
    return load_train_val(cfg, device=resolve_device(device))


def small_mlp(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(32,))).to(device)


@pytest.mark.parametrize(("optimizer", "schedule"), list(itertools.product(OPTIMIZERS, SCHEDULES)))
def test_every_optimizer_and_schedule_steps(data, optimizer: str, schedule: str) -> None:  # type: ignore[no-untyped-def]
    lr = 0.05 if optimizer == "sgd" else 0.003
    model = small_mlp(data.train.x.device)
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(
        model=model,
        data=data,
        optim=OptimConfig(optimizer=optimizer, lr=lr, schedule=schedule),
        epochs=2,
        batch_size=64,
        seed=0,
    )
    assert result.outcome == "completed" and len(result.history) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert result.history[-1].lr > 0
    if schedule in ("cosine", "exponential"):
        assert result.history[1].lr < result.history[0].lr


def test_loss_decreases_and_best_epoch_is_kept(data) -> None:  # type: ignore[no-untyped-def]
    seen: list[EpochMetrics] = []
    model = small_mlp(data.train.x.device)
    result = fit(
        model=model,
        data=data,
        optim=OptimConfig(lr=0.05),
        epochs=3,
        batch_size=32,
        seed=0,
        on_epoch=lambda m: seen.append(m) or False,
    )
    assert [m.epoch for m in seen] == [1, 2, 3]
    assert seen[-1].train_loss < seen[0].train_loss
    assert result.best_val_accuracy == max(m.val_accuracy for m in seen) > 0.9
    # the kept state is the best epoch's: loading it reproduces that accuracy
    model.load_state_dict(result.best_state)
    assert evaluate(model, data.val)[1] == pytest.approx(result.best_val_accuracy)


def test_hook_can_stop_training(data) -> None:  # type: ignore[no-untyped-def]
    result = fit(
        model=small_mlp(data.train.x.device),
        data=data,
        optim=OptimConfig(),
        epochs=5,
        batch_size=64,
        seed=0,
        on_epoch=lambda m: m.epoch == 2,
    )
    assert result.outcome == "stopped" and len(result.history) == 2


def test_diverging_lr_gives_diverged_outcome(data) -> None:  # type: ignore[no-untyped-def]
    result = fit(
        model=small_mlp(data.train.x.device),
        data=data,
        optim=OptimConfig(lr=1e6, momentum=0.9),
        epochs=5,
        batch_size=64,
        seed=0,
    )
    assert result.outcome == "diverged"
    assert len(result.history) < 5


def test_same_seed_same_result(data) -> None:  # type: ignore[no-untyped-def]
    runs = [
        fit(
            model=small_mlp(data.train.x.device),
            data=data,
            optim=OptimConfig(),
            epochs=1,
            batch_size=64,
            seed=7,
        )
        .history[0]
        .val_loss
        for _ in range(2)
    ]
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device cpu"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu9")


def test_invalid_optimizer_settings() -> None:
    with pytest.raises(ConfigError, match="positive"):
        OptimConfig(lr=-0.1)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        OptimConfig(optimizer="lbfgs")


def test_augmentation_and_label_smoothing_train(data) -> None:  # type: ignore[no-untyped-def]
    result = fit(
        model=small_mlp(data.train.x.device),
        data=data,
        optim=OptimConfig(lr=0.05),
        epochs=3,
        batch_size=32,
        seed=0,
        augment="affine",
        label_smoothing=0.1,
    )
    assert result.outcome == "completed" and result.best_val_accuracy > 0.8
    assert result.history[-1].train_loss > 0.1  # smoothed targets keep the training loss above 0


def test_a_cnn_trains_channels_last_on_the_cpu_and_learns(data) -> None:  # type: ignore[no-untyped-def]
    """oneDNN's faster layout on the CPU (engine.cpu_memory_format); elsewhere the layout is kept."""
    torch.manual_seed(0)
    device = data.train.x.device
    model = build_model(ModelConfig(family="cnn", channels=(8, 16), fc_width=32)).to(device)
    result = fit(model=model, data=data, optim=OptimConfig(lr=0.05), epochs=2, batch_size=32, seed=0)
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # 8 -> 16: unambiguous layout
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == (device.type == "cpu")
    assert result.outcome == "completed" and result.best_val_accuracy > 0.8
    rebuilt = build_model(ModelConfig(family="cnn", channels=(8, 16), fc_width=32)).to(device)
    rebuilt.load_state_dict(result.best_state or {})  # a checkpoint loads into the default layout
    assert abs(evaluate(rebuilt, data.val)[1] - result.best_val_accuracy) < 1e-6


@pytest.mark.parametrize(("precision", "trains_in"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_of_training_and_of_evaluation(data, precision: str, trains_in: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    """--precision bf16: the training forward pass computes in bfloat16 (autocast), while the
    weights the optimizer updates and the evaluation that picks the best epoch stay float32."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(family="cnn", channels=(8, 16), fc_width=32)).to(data.train.x.device)
    seen: list[tuple[bool, torch.dtype]] = []  # (training, the last layer's output dtype)
    model[-1].register_forward_hook(lambda m, _, out: seen.append((m.training, out.dtype)))
    optim = OptimConfig(lr=0.05)
    result = fit(model=model, data=data, optim=optim, epochs=2, batch_size=32, seed=0, precision=precision)
    assert {dtype for training, dtype in seen if training} == {trains_in}
    assert {dtype for training, dtype in seen if not training} == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.outcome == "completed" and result.best_val_accuracy > 0.8


def test_bf16_is_refused_where_autocast_cannot_run_it() -> None:
    check_precision(torch.device("cpu"), "bf16")
    check_precision(torch.device("mps"), "fp32")
    with pytest.raises(DeviceError, match="--precision bf16 runs on cpu and cuda, not mps"):
        check_precision(torch.device("mps"), "bf16")


def test_evaluation_runs_without_autograd() -> None:
    """predict_logits runs under inference_mode: no graph is kept for a test split's forward pass
    (a refactor once moved its decorator onto another function, and the lockbox warned)."""
    from hpo.core.engine import predict_logits

    model = build_model(ModelConfig(hidden=(16,)))
    logits = predict_logits(model, torch.zeros(3, 1, 28, 28))
    assert logits.shape == (3, 10) and not logits.requires_grad and logits.is_inference()


@pytest.mark.parametrize("family", ["mlp", "cnn", "resnet"])
def test_every_family_trains_on_colour_images_of_any_size(family: str, device: str) -> None:
    """Each registered family takes (N, 3, 20, 24) images into 5 classes on the test device (a
    colour's square says the class); its footprint counts the model it builds."""
    from hpo.core.data import Normalization, Split, TrainValData
    from hpo.core.datasets import DatasetSpec
    from hpo.core.footprint import footprint
    from hpo.core.models import BUILDERS, count_parameters
    from hpo.families import FAMILIES

    assert set(BUILDERS) == set(FAMILIES)
    dev = resolve_device(device)
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (400,), generator=generator)
    x = torch.randn(400, 3, 20, 24, generator=generator) * 0.3
    x[torch.arange(400), y % 3, 4:12, 4:12] += 1.0 + (y // 3).float()[:, None, None]
    spec = DatasetSpec(name="c", shape=(3, 20, 24), classes=tuple("abcde"), train_size=400, framing="resize")
    split = Split(x=x.to(dev), y=y.to(dev))
    data = TrainValData(
        train=split, val=split, normalization=Normalization(0.0, 1.0), fingerprint="", spec=spec
    )
    cfg = ModelConfig(family=family, channels=(8, 16), batch_norm=True, in_shape=(3, 20, 24), classes=5)
    torch.manual_seed(0)
    model = build_model(cfg).to(dev)
    assert footprint(cfg).parameters == count_parameters(model)
    optim = OptimConfig(optimizer="adam", lr=3e-3)
    result = fit(model=model, data=data, optim=optim, epochs=4, batch_size=32, seed=0, on_epoch=None)
    assert result.outcome == "completed" and result.best_val_accuracy > 0.6, result.best_val_accuracy
