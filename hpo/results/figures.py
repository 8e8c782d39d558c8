"""Figures, the only module that imports matplotlib: a study's figures (`hpo report`) and the
lockbox's, as PNG files.

Figures are built from plain data on `matplotlib.figure.Figure` objects, which render straight to
files: no pyplot, no global backend, nothing shown on screen, nothing changed on import."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _figure(*, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def confusion_png(confusion: list[list[int]], *, classes: Sequence[str], path: Path) -> Path:
    k = len(classes)
    fig, ax = _figure(figsize=(7, 6))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(row) for row in confusion) or 1
    for i in range(k):
        for j in range(k):
            color = "white" if confusion[i][j] > top / 2 else "black"
            ax.text(j, i, str(confusion[i][j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_title("Test confusion matrix")
    return _save(fig, path)


def misclassified_png(
    images: torch.Tensor,
    *,
    labels: torch.Tensor,
    pred: torch.Tensor,
    wrong: torch.Tensor,
    classes: Sequence[str],
    path: Path,
    limit: int = 36,
) -> Path:
    """Grid of up to `limit` misclassified test images (uint8 (N, 28, 28)), true -> predicted."""
    shown = wrong[:limit].tolist()
    cols = 6
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(cols * 1.7, rows * 1.9))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown, strict=False):
        ax.imshow(images[i].numpy(), cmap="gray")
        ax.set_title(f"{classes[int(labels[i])]}→{classes[int(pred[i])]}", fontsize=7)
    fig.suptitle(f"Misclassified test images ({len(wrong)} in all), true→predicted", fontsize=9)
    return _save(fig, path)


def test_pngs(
    *,
    images: torch.Tensor,
    labels: torch.Tensor,
    pred: torch.Tensor,
    wrong: torch.Tensor,
    confusion: list[list[int]],
    classes: Sequence[str],
    out_dir: Path,
) -> list[Path]:
    """The lockbox's figures: the test confusion matrix and the misclassified test images."""
    return [
        confusion_png(confusion, classes=classes, path=out_dir / "confusion_matrix.png"),
        misclassified_png(
            images, labels=labels, pred=pred, wrong=wrong, classes=classes, path=out_dir / "misclassified.png"
        ),
    ]


def history_png(rows: Sequence[Any], *, path: Path, baseline: Any = None) -> Path:
    """Validation accuracy of each complete trial, and the best so far, by trial number; the best
    classical baseline (`workspace.Baseline`) as a dashed line when there is one."""
    done = sorted((r for r in rows if r.state == "COMPLETE"), key=lambda r: r.number)
    fig, ax = _figure(figsize=(7, 4))
    xs, ys = [r.number for r in done], [100 * (r.value or 0) for r in done]
    ax.scatter(xs, ys, s=14, label="trial")
    best, running = [], 0.0
    for y in ys:
        running = max(running, y)
        best.append(running)
    ax.step(xs, best, where="post", color="C3", label="best so far")
    if baseline is not None:
        label = f"best baseline ({baseline.name})"
        ax.axhline(100 * baseline.val_accuracy, color="grey", linestyle="--", lw=1, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Optimization history")
    ax.legend()
    return _save(fig, path)


def importances_png(importances: dict[str, float], *, path: Path) -> Path:
    fig, ax = _figure(figsize=(7, 4))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names])
    else:
        ax.text(0.5, 0.5, "not enough complete trials to estimate importances", ha="center")
    ax.set_xlabel("importance (Optuna's default evaluator)")
    ax.set_title("Hyperparameter importances")
    return _save(fig, path)


def _fmt(value: float) -> str:
    """2048 stays 2048; 0.000272 and 0.00766 keep three significant digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e6 else f"{value:.3g}"


def _axis(rows: Sequence[Any], name: str) -> tuple[list[float], list[tuple[float, str]]]:
    """One axis: each trial's position in 0..1, and the (position, label) ticks that say what
    the positions mean: every category, or the range's ends and middle (log when it is wide)."""
    values = [r.params[name] for r in rows]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        order = sorted({str(v) for v in values})
        span = max(1, len(order) - 1)
        positions = [order.index(str(v)) / span if len(order) > 1 else 0.5 for v in values]
        return positions, [(i / span if len(order) > 1 else 0.5, c) for i, c in enumerate(order)]
    nums = [float(v) for v in values]
    log = min(nums) > 0 and max(nums) / min(nums) > 50  # wide positive ranges read better in log
    scaled = [math.log10(v) for v in nums] if log else nums
    low, high = min(scaled), max(scaled)
    if high <= low:
        return [0.5] * len(nums), [(0.5, _fmt(nums[0]))]
    middle = 10 ** ((low + high) / 2) if log else (low + high) / 2
    ticks = [(0.0, _fmt(min(nums))), (0.5, _fmt(middle) + (" (log)" if log else "")), (1.0, _fmt(max(nums)))]
    return [(v - low) / (high - low) for v in scaled], ticks


def parallel_png(rows: Sequence[Any], *, path: Path) -> Path:
    """Parallel coordinates of the parameters all complete trials share. Every axis is labelled
    with its categories or range; colour is the trial's rank, so a few chance-level trials cannot
    squeeze every good trial into one colour."""
    done = sorted((r for r in rows if r.state == "COMPLETE"), key=lambda r: r.value or 0.0)  # best last
    names = sorted({k for r in done for k in r.params if sum(k in d.params for d in done) == len(done)})
    fig, ax = _figure(figsize=(max(8, len(names) * 1.1), 5))
    if done and names:
        axes = {n: _axis(done, n) for n in names}
        cmap = colormaps["viridis"]
        for rank, _ in enumerate(done):
            shade = rank / (len(done) - 1) if len(done) > 1 else 1.0
            ax.plot(
                range(len(names)), [axes[n][0][rank] for n in names], color=cmap(shade), alpha=0.8, lw=1.2
            )
        for i, name in enumerate(names):
            ax.axvline(i, color="grey", lw=0.6)
            for position, label in axes[name][1]:
                ax.text(i + 0.04, position, label, fontsize=7, va="center", color="0.2")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        ax.set_xlim(-0.2, len(names) - 0.4)
    ax.set_yticks([])
    ax.set_title(f"Parallel coordinates of {len(done)} complete trials (colour: rank, yellow = best)")
    return _save(fig, path)


def curves_png(rows: Sequence[Any], *, path: Path) -> Path:
    """Validation accuracy per epoch of every trial; pruned trials end early with an x."""
    fig, ax = _figure(figsize=(7, 4.5))
    colors = {"COMPLETE": "C0", "PRUNED": "C1", "FAIL": "C3"}
    for r in rows:
        if not r.curve:
            continue
        epochs = sorted(r.curve)
        acc = [100 * r.curve[e] for e in epochs]
        ax.plot(epochs, acc, color=colors.get(r.state, "grey"), alpha=0.6, lw=1)
        if r.state == "PRUNED":
            ax.plot(epochs[-1], acc[-1], "x", color="C1")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Validation curves (blue: complete, orange: pruned, red: failed)")
    return _save(fig, path)
