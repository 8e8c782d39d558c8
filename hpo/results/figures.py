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

from hpo.search.space_extent import plain_params
from hpo.stores import link


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
    """Grid of up to `limit` misclassified test images (uint8 (N, C, H, W)), true -> predicted."""
    shown = wrong[:limit].tolist()
    cols = 6
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(cols * 1.7, rows * 1.9))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown, strict=False):
        image = images[i]  # (C, H, W): one grey channel, or RGB
        ax.imshow(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy(), cmap="gray")
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
    return _save(history_figure(rows, baseline=baseline), path)


def history_figure(rows: Sequence[Any], *, baseline: Any = None) -> Figure:
    """Validation accuracy of each trial by trial number: complete trials by their value, pruned
    ones (grey x) by the last epoch they reached, the best so far over the complete ones; the best
    classical baseline (`workspace.Baseline`) as a dashed line when there is one."""
    done = sorted((r for r in rows if r.state == link.COMPLETE), key=lambda r: r.number)
    cut = [r for r in rows if r.state == link.PRUNED and r.curve]
    fig, ax = _figure(figsize=(7, 4))
    xs, ys = [r.number for r in done], [100 * (r.value or 0) for r in done]
    ax.scatter(xs, ys, s=14, label="complete trial")
    if cut:
        pruned = [100 * r.curve[max(r.curve)] for r in cut]
        ax.scatter(
            [r.number for r in cut], pruned, s=14, marker="x", color="0.55", label="pruned (last epoch)"
        )
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
    return fig


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


NA = -0.15  # where a trial that has no value for an axis (momentum under adam) crosses it


def _axis(values: Sequence[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """One axis: each trial's position in 0..1 (NA when it has no value there), and the
    (position, label) ticks that say what the positions mean: every category, or the range's
    ends and middle (log when it is wide)."""
    present = [v for v in values if v is not None]
    ticks = [(NA, "n/a")] if len(present) < len(values) else []
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        order = sorted({str(v) for v in present})
        span = max(1, len(order) - 1)
        at = {c: i / span if len(order) > 1 else 0.5 for i, c in enumerate(order)}
        return [NA if v is None else at[str(v)] for v in values], [*ticks, *((p, c) for c, p in at.items())]
    nums = [float(v) for v in present]
    log = min(nums) > 0 and max(nums) / min(nums) > 50  # wide positive ranges read better in log
    low, high = (math.log10(min(nums)), math.log10(max(nums))) if log else (min(nums), max(nums))

    def place(v: Any) -> float:
        if v is None:
            return NA
        x = math.log10(float(v)) if log else float(v)
        return (x - low) / (high - low) if high > low else 0.5

    if high <= low:
        return [place(v) for v in values], [*ticks, (0.5, _fmt(nums[0]))]
    middle = 10 ** ((low + high) / 2) if log else (low + high) / 2
    ends = [(0.0, _fmt(min(nums))), (0.5, _fmt(middle) + (" (log)" if log else "")), (1.0, _fmt(max(nums)))]
    return [place(v) for v in values], [*ticks, *ends]


def parallel_axes(rows: Sequence[Any]) -> list[str]:
    """The axes worth drawing for these trials: each hyperparameter (`lr` however it was drawn)
    that at least two trials have and that takes more than one value; a conditional one (momentum,
    gamma) is drawn with an n/a mark for the trials without it."""
    params = [plain_params(r.params) for r in rows]
    names = {k for p in params for k in p}
    return sorted(
        n for n in names if sum(n in p for p in params) >= 2 and len({str(p.get(n)) for p in params}) > 1
    )


def parallel_png(rows: Sequence[Any], *, path: Path) -> Path:
    """Parallel coordinates of the complete trials' hyperparameters (`parallel_axes`). Every axis
    is labelled with its categories or range; colour is the trial's rank, so a few chance-level
    trials cannot squeeze every good trial into one colour."""
    done = sorted((r for r in rows if r.state == link.COMPLETE), key=lambda r: r.value or 0.0)  # best last
    names = parallel_axes(done)
    fig, ax = _figure(figsize=(max(8, len(names) * 1.1), 5.5))
    if done and names:
        params = [plain_params(r.params) for r in done]
        axes = {n: _axis([p.get(n) for p in params]) for n in names}
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
        ax.set_xlim(-0.3, len(names) - 0.15)  # room for the last axis's labels, which sit right of it
        ax.set_ylim(NA - 0.08, 1.08)
    ax.set_yticks([])
    ax.set_title(f"Parallel coordinates of {len(done)} complete trials (colour: rank, yellow = best)")
    return _save(fig, path)


def curves_png(rows: Sequence[Any], *, path: Path) -> Path:
    """Validation accuracy per epoch of every trial; pruned trials end early with an x."""
    fig, ax = _figure(figsize=(7, 4.5))
    colors = {link.COMPLETE: "C0", link.PRUNED: "C1", link.FAIL: "C3"}
    for r in rows:
        if not r.curve:
            continue
        epochs = sorted(r.curve)
        acc = [100 * r.curve[e] for e in epochs]
        ax.plot(epochs, acc, color=colors.get(r.state, "grey"), alpha=0.6, lw=1)
        if r.state == link.PRUNED:
            ax.plot(epochs[-1], acc[-1], "x", color="C1")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Validation curves (blue: complete, orange: pruned, red: failed)")
    return _save(fig, path)


def front_png(rows: Sequence[Any], front: Sequence[Any], *, size_label: str, path: Path) -> Path:
    """A multi-objective study: every complete trial's size (log scale) against its validation
    accuracy, the Pareto front joined and labelled with trial numbers."""
    fig, ax = _figure(figsize=(7, 4.5))
    done = [r for r in rows if r.state == link.COMPLETE and len(r.values) >= 2]
    ax.scatter([r.values[1] for r in done], [100 * r.values[0] for r in done], s=14, color="C0", alpha=0.5)
    xs, ys = [r.values[1] for r in front], [100 * r.values[0] for r in front]
    ax.step(xs, ys, where="post", color="C3", lw=1.5)
    ax.scatter(xs, ys, s=30, color="C3", zorder=3)
    for r, x, y in zip(front, xs, ys, strict=True):
        ax.annotate(str(r.number), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if not done:  # nothing to scale: every trial so far was pruned, failed or is running
        ax.text(0.5, 0.5, "no complete trial yet", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
    ax.set_xlabel(size_label)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Pareto front (red) of the complete trials (blue)")
    return _save(fig, path)
