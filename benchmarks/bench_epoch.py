"""One-epoch throughput: the seeds' way (torchvision dataset + ToTensor + DataLoader) against
hpo's engine (device-resident tensors), side by side in one run, plus the per-trial bookkeeping
cost (Optuna storage + MLflow logging) and this machine's matmul rate.

    python benchmarks/bench_epoch.py --data-dir ../shared/datasets [--device cpu|cuda] [--repeats 3]

An "epoch" is 48,000 training images (one pass, shuffled) + evaluation of 10,000 validation
images. Each configuration runs `--repeats` times, alternating (a) and (b); medians are shown."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_bookkeeping import bookkeeping_seconds  # beside this script

from hpo.config import DataConfig, ModelConfig, OptimConfig
from hpo.core.data import load_train_val, split_indices
from hpo.core.device import resolve_device, seed_everything
from hpo.core.engine import fit
from hpo.core.models import build_model

MLP = ModelConfig(family="mlp", hidden=(300, 100))
SEED_001_CNN = ModelConfig(family="cnn", channels=(10, 20), kernel_size=5, padding="valid", fc_width=0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seeds_epoch(*, data_dir: str, model_cfg: ModelConfig, batch: int, device: torch.device) -> float:
    """(a) The seeds' loop: ToTensor + Normalize per image, DataLoader(shuffle=True), .item() per step."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    full = datasets.MNIST(data_dir, train=True, download=False, transform=tf)
    train_idx, val_idx = split_indices(n=len(full), val_size=10_000, seed=0)
    train = DataLoader(Subset(full, train_idx.tolist()), batch_size=batch, shuffle=True)
    val = DataLoader(Subset(full, val_idx.tolist()), batch_size=1000)
    model = build_model(model_cfg).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = time.perf_counter()
    model.train()
    for x, y in train:
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()  # the seeds print/accumulate the loss every step
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in val:
            correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
    sync(device)
    return time.perf_counter() - start


def hpo_epoch(
    *, data: object, model_cfg: ModelConfig, batch: int, device: torch.device, precision: str = "fp32"
) -> float:
    """(b) hpo's engine: data already on the device, one host sync per epoch."""
    model = build_model(model_cfg).to(device)
    start = time.perf_counter()
    optim = OptimConfig(lr=0.05, momentum=0.9)
    fit(model=model, data=data, optim=optim, epochs=1, batch_size=batch, seed=0, precision=precision)  # type: ignore[arg-type]
    sync(device)
    return time.perf_counter() - start


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def mlp_flops(*, train: int, val: int) -> float:
    """Matmul FLOPs of one epoch of 784-300-100-10: forward 2 per weight per image; backward 2 for
    the weight gradient and 2 for the input gradient (none for the first layer's input)."""
    weights = 784 * 300 + 300 * 100 + 100 * 10
    first = 784 * 300
    return train * (2 * weights + 2 * weights + 2 * (weights - first)) + val * 2 * weights


def median_of(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def alternate(a: Callable[[], float], b: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Medians of `repeats` runs of a and b, interleaved a, b, a, b... so drift hits both."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(a())
        tb.append(b())
    return statistics.median(ta), statistics.median(tb)


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return f"{cpu}{_matrix_units()}, {torch.get_num_threads()} threads{gpu}; torch {torch.__version__}"


def _matrix_units() -> str:
    """What the CPU multiplies with, from its flags: this project's CPUs are an Intel Xeon with AMX
    or an AMD EPYC with AVX2 only, and the same code runs at different speeds on them."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next(line for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        return ""
    names = set(flags.split())
    for flag, label in (("amx_tile", " (AMX)"), ("avx512f", " (AVX-512, no AMX)"), ("avx2", " (AVX2 only)")):
        if flag in names:
            return label
    return ""


ROW = "{:<5} {:>5} {:>16} {:>14} {:>8} {:>13}"


def main() -> None:
    from hpo.stores.runtime import configure

    configure()
    device = resolve_device(ARGS.device)
    seed_everything(seed=0, deterministic=False, device=device)
    data = load_train_val(DataConfig(data_dir=ARGS.data_dir), device=device)
    print(f"machine: {machine(device)}; device {device}; (b) in {ARGS.precision}, (a) in fp32")
    rate = matmul_gflops(device)
    print(f"matmul 2048x2048 float32: {rate:.1f} GFLOP/s")
    images = len(data.train) + len(data.val)
    print(ROW.format("model", "batch", "(a) seeds img/s", "(b) hpo img/s", "(b)/(a)", "(b) % matmul"))
    for name, cfg in (("mlp", MLP), ("cnn", SEED_001_CNN)):
        for batch in ARGS.batches:
            ta, tb = alternate(
                lambda c=cfg, b=batch: seeds_epoch(
                    data_dir=ARGS.data_dir, model_cfg=c, batch=b, device=device
                ),
                lambda c=cfg, b=batch: hpo_epoch(
                    data=data, model_cfg=c, batch=b, device=device, precision=ARGS.precision
                ),
                ARGS.repeats,
            )
            flops = mlp_flops(train=len(data.train), val=len(data.val))
            share = f"{100 * flops / tb / 1e9 / rate:.0f}%" if name == "mlp" else ""
            print(
                ROW.format(
                    name, batch, f"{images / ta:,.0f}", f"{images / tb:,.0f}", f"{ta / tb:.1f}x", share
                )
            )
    trial = statistics.median(
        hpo_epochs(data=data, batch=ARGS.trial_batch, epochs=3, device=device) for _ in range(ARGS.repeats)
    )
    keep = bookkeeping_seconds(data_dir=ARGS.data_dir, storage="sqlite:///studies/hpo.db", tracking_uri=None)
    print(
        f"bookkeeping per trial (Optuna + MLflow, 3 epochs, checkpoint): {keep:.3f} s = "
        f"{100 * keep / (trial + keep):.1f}% of a 3-epoch MLP trial at batch {ARGS.trial_batch} "
        f"({trial:.2f} s training)"
    )


def hpo_epochs(*, data: object, batch: int, epochs: int, device: torch.device) -> float:
    model = build_model(MLP).to(device)
    start = time.perf_counter()
    fit(model=model, data=data, optim=OptimConfig(lr=0.05), epochs=epochs, batch_size=batch, seed=0)  # type: ignore[arg-type]
    sync(device)
    return time.perf_counter() - start


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="hpo's --precision for (b)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--trial-batch", type=int, default=128, help="batch size of the 3-epoch trial")
    return p.parse_args()


if __name__ == "__main__":
    ARGS = parse()
    main()
