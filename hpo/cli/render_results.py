"""Rich renderables of the commands over a study's results (`hpo best`, the lockbox, `hpo
predict`, `hpo reproduce`, `hpo baselines`), built from the library's plain results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hpo.cli.render import config_text, pct, seconds_text, size_text, whole
from hpo.stores import link

if TYPE_CHECKING:  # annotations only: importing these would load torch and optuna
    from hpo.results.baselines import BaselineResult
    from hpo.results.lockbox import TestReport
    from hpo.results.predict import Prediction, Predictions
    from hpo.results.registry import Registered
    from hpo.results.reproduce import Reproduction
    from hpo.stores.optuna import TrialRow
    from hpo.stores.workspace import Baseline, BestInfo


def _split_text(spec: Any) -> str:
    if spec is None:
        return "-"
    return f"{spec.dataset} / val {spec.val_size}, seed {spec.split_seed}, fingerprint {spec.fingerprint}"


def front_table(front: Sequence[TrialRow], *, objective: str) -> RenderableType:
    """A multi-objective study's Pareto front, smallest first: each point's figures."""
    table = Table(title=f"Pareto front ({objective}), by validation", header_style="bold", show_edge=False)
    for name in ("trial", "val acc", "parameters", "FLOPs", "CPU ms (1)", "CPU ms (64)", "epochs", "params"):
        table.add_column(name, justify="left" if name == "params" else "right")
    for r in front:
        a = r.attrs
        ms = [a.get(k) for k in (link.CPU_LATENCY_MS, link.CPU_SERVING_MS)]
        table.add_row(
            str(r.number),
            pct(r.value),
            f"{int(a.get(link.PARAMETERS, 0)):,}",
            f"{int(a.get(link.FLOPS, 0)):,}",
            *["-" if v is None else f"{float(v):.3f}" for v in ms],
            str(a.get(link.EPOCHS_RUN, "-")),
            config_text(r.params),
        )
    if not front:
        return Text("Pareto front: no complete trial yet", style="dim")
    hint = "take the one test look for a point: hpo best --evaluate-test --pick TRIAL (or --max-params N)"
    return Group(whole(table), Text(hint, style="dim"))


def best_view(info: BestInfo) -> RenderableType:
    t = info.trial
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("study", info.study),
        ("chosen trial" if info.picked else "best trial", str(t.number)),
        ("validation accuracy", pct(t.value)),
        ("best epoch", str(t.attrs.get(link.BEST_EPOCH, "-"))),
        ("duration", seconds_text(t.seconds)),
        ("device", f"{t.attrs.get(link.DEVICE, '-')}, {t.attrs.get(link.PRECISION, 'fp32')}"),
        ("MLflow run", info.run_id or "-"),
        ("checkpoint", info.checkpoint_uri or "-"),
        ("parameters", config_text(t.params)),
        ("size, CPU latency", size_text(t.attrs)),
        ("dataset / split", _split_text(info.spec)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    if info.baseline is not None:
        b = info.baseline
        gap = 100 * ((t.value or 0.0) - b.val_accuracy)
        text = f"{b.name} {pct(b.val_accuracy)} validation ({b.fit_seconds:.0f} s to fit)"
        text += f"; the best trial is {gap:+.2f} points above it"
        table.add_row("best baseline", text)
    if info.evaluations:
        table.add_row("test set", _looks_text(info))
    else:
        never = "never used (hpo best --evaluate-test evaluates it once)"
        if info.split_looks:
            never = f"never by this study, but {info.split_looks} time(s) by another study on the same split"
        table.add_row("test set", Text(never, style="green" if not info.split_looks else "yellow"))
    return whole(table)


def _looks_text(info: BestInfo) -> Text:
    last = info.evaluations[-1]
    result = f"test accuracy {pct(last['accuracy'])}" if "accuracy" in last else "being evaluated now"
    if "ensemble_accuracy" in last:
        result += f"; ensemble of {len(last['members'])}: {pct(last['ensemble_accuracy'])}"
    text = Text(
        f"used {len(info.evaluations)} time(s); last {last['time']} on trial {last['trial']}: {result}"
    )
    if info.split_looks > len(info.evaluations):
        text.append(f" ({info.split_looks} looks at this split across studies)")
    mine = [e for e in info.evaluations if e.get("trial") == info.trial.number and "accuracy" in e]
    if last.get("trial") != info.trial.number and mine:  # e.g. two points of a front, each looked at
        text.append(
            f"\ntrial {info.trial.number} was looked at too: {mine[-1]['time']}, test accuracy "
            f"{pct(mine[-1]['accuracy'])}"
        )
    elif last.get("trial") != info.trial.number:
        text.append(
            f"\nstale: that was trial {last['trial']}; the best trial is now {info.trial.number}, "
            "never tested",
            style="bold red",
        )
    text.stylize("yellow", 0, len(text.plain.split("\n")[0]))
    return text


def test_view(r: TestReport) -> RenderableType:
    head = Text(
        f"Test evaluation of study '{r.study}', trial {r.trial} ({r.n:,} test images)\n", style="bold"
    )
    head.append(f"test accuracy {pct(r.accuracy)}", style="bold green")
    gap = 100 * (r.val_accuracy - r.accuracy)
    head.append(f"   validation accuracy {pct(r.val_accuracy)}   gap {gap:+.2f} points\n")
    head.append(f"mean NLL {r.nll_mean:.4f}   summed NLL {r.nll_sum:.1f}   test-set uses {r.evaluations}")
    if r.ensemble is not None:
        e = r.ensemble
        members = ", ".join(map(str, e.members))
        head.append(f"\nensemble of {len(e.members)} (trials {members}): ", style="bold")
        head.append(f"test accuracy {pct(e.accuracy)}", style="bold green")
        head.append(f"   validation accuracy {pct(e.val_accuracy)}   mean NLL {e.nll_mean:.4f}")
    ranked = Table(
        title="Per-class accuracy (hardest first)", min_width=40, header_style="bold", show_edge=False
    )
    for name in ("class", "accuracy", "images"):
        ranked.add_column(name, justify="left" if name == "class" else "right")
    for name, acc, count in r.per_class:
        ranked.add_row(name, pct(acc), str(count))
    confusion = Table(
        title="Confusion matrix (rows: true class, columns: predicted class by number)",
        header_style="bold",
        show_edge=False,
    )
    confusion.add_column("")
    for j in range(len(r.classes)):  # numbers, not names cut to fit: "Sneake" is no class
        confusion.add_column(str(j), justify="right")
    for i, row in enumerate(r.confusion):
        confusion.add_row(
            f"{i} {r.classes[i]}",
            *[
                Text(str(v), style="bold green" if i == j else ("red" if v else "dim"))
                for j, v in enumerate(row)
            ],
        )
    files = Text("artifacts: " + ", ".join(r.artifacts) + f" (also on MLflow run {r.run_id})", style="dim")
    return Group(head, whole(ranked), whole(confusion), files)


def predictions_table(results: Sequence[Prediction], *, top: int) -> Table:
    table = Table(header_style="bold", show_edge=False)
    for name in ("image", "label", "probability", *(["top"] if top > 1 else [])):
        table.add_column(name)
    for r in results:
        label, prob = r.top[0]
        others = ", ".join(f"{name} {100 * p:.1f}%" for name, p in r.top[1:])
        note = " (inverted)" if r.inverted else ""
        table.add_row(r.path + note, label, f"{100 * prob:.1f}%", *([others] if top > 1 else []))
    return whole(table)


def reproduction_view(r: Reproduction) -> RenderableType:
    gap = 100 * (r.reproduced - r.original)
    head = Text(f"Reproduced trial {r.trial} of study '{r.study}' ({r.epochs} epochs)\n", style="bold")
    head.append(f"original {pct(r.original)}   reproduced {pct(r.reproduced)}   difference {gap:+.2f} points")
    detail = Text(f"MLflow run {r.run_id} (reproduces run {r.original_run_id})", style="dim")
    return Group(head, detail)


def baselines_table(results: Sequence[BaselineResult], *, experiment: str) -> Table:
    table = Table(title=f"Baselines in experiment '{experiment}'", header_style="bold", show_edge=False)
    for name in ("baseline", "val acc", "fit s", "MLflow run"):
        table.add_column(name, justify="left" if name in ("baseline", "MLflow run") else "right")
    for r in sorted(results, key=lambda r: -r.val_accuracy):
        table.add_row(r.name, pct(r.val_accuracy), f"{r.fit_seconds:.1f}", r.run_id)
    return whole(table)


def against_baseline(*, best: float | None, baseline: Baseline | None) -> Text:
    if baseline is None:
        return Text("no baselines fitted yet: `hpo baselines` fits three on the same split", style="dim")
    gap = "" if best is None else f", {100 * (best - baseline.val_accuracy):+.2f} points"
    return Text(f"best trial {pct(best)} vs best baseline {baseline.name} {pct(baseline.val_accuracy)}{gap}")


def baseline_line(r: BaselineResult) -> Text:
    return Text(f"{r.name}: validation accuracy {pct(r.val_accuracy)}, fitted in {r.fit_seconds:.1f} s")


def tested_note(r: Predictions) -> Text:
    """Whether the model that just predicted is the one the test set scored."""
    if r.test_accuracy is not None:
        return Text(f"model: trial {r.trial}, test accuracy {pct(r.test_accuracy)}", style="dim")
    note = f"model: trial {r.trial} (validation {pct(r.val_accuracy)}), never evaluated on the test set"
    return Text(note, style="yellow")


def registered_line(reg: Registered) -> Text:
    """What was registered, and the two ways to use it, each runnable as printed from any folder."""
    return Text(
        f"registered {reg.name!r} version {reg.version}: trial {reg.trial} "
        f"(val {pct(reg.val_accuracy)}), run {reg.run_id}\n"
        f"serve it:     {reg.serve_command()}\n"
        f"in Python:    {reg.python_lines()}\n"
        f"{reg.io_text}"
    )
