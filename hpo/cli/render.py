"""Every Rich renderable of the CLI, built from the library's plain results. Nothing here
prints or calls the library beyond `hpo.search.space` (pure): the commands print what they get."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hpo.search.space import config_from_params, describe
from hpo.stores import link

if TYPE_CHECKING:  # annotations only: importing these would load torch and optuna
    from hpo.core.engine import EpochMetrics
    from hpo.search.budget import CallEstimate
    from hpo.search.session import SearchOutcome
    from hpo.stores.check import Finding
    from hpo.stores.optuna import Counts, TrialRow
    from hpo.stores.workspace import StudySummary


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def epoch_row(m: EpochMetrics) -> list[str]:
    return [
        str(m.epoch),
        f"{m.train_loss:.4f}",
        pct(m.train_accuracy),
        f"{m.val_loss:.4f}",
        pct(m.val_accuracy),
        f"{m.lr:.3g}",
        f"{m.epoch_seconds:.1f}",
    ]


def epoch_table(history: Sequence[EpochMetrics], *, best_epoch: int = 0, title: str = "") -> Table:
    table = Table(title=title or None, show_edge=False, header_style="bold")
    for name in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "s"):
        table.add_column(name, justify="right")
    for m in history:
        table.add_row(*epoch_row(m), style="bold green" if m.epoch == best_epoch else None)
    return whole(table)


def train_result(
    *,
    outcome: str,
    best_epoch: int,
    best_val_accuracy: float,
    run_id: str,
    experiment: str,
    parameters: int,
    device: str,
    seconds: float,
) -> RenderableType:
    if outcome == "diverged":
        head = Text("Training diverged (non-finite loss): lower --lr. ", style="bold red")
    else:
        head = Text("Best validation accuracy ", style="bold")
        head.append(pct(best_val_accuracy), style="bold green")
        head.append(f" at epoch {best_epoch}. ")
    detail = Text(
        f"MLflow run {run_id} in experiment '{experiment}'; {parameters:,} parameters; "
        f"{device}; {seconds:.1f} s.",
        style="dim",
    )
    return Group(head, detail)


def config_text(params: dict[str, Any]) -> str:
    """A trial's configuration in one line (`space.describe`), rebuilt from its recorded
    parameters; "-" when it has none yet. Never shortened: a cut value reads as another value."""
    cfg = config_from_params(params)
    return "-" if cfg is None else describe(cfg)


def whole(table: Table) -> Table:
    """`table` with every cell shown whole: a value too wide for its column wraps onto more lines
    instead of ending in "…" (a path cut short cannot be pasted, a number cut short is another)."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def start_line(*, study: str, done: int, target: int, resumed: bool, device: str) -> Text:
    if done >= target:
        return Text(f"Study '{study}' already has {done}/{target} finished trials.")
    verb = "Resuming" if resumed else "Starting"
    todo = target - done
    return Text(f"{verb} study '{study}': {done}/{target} trials finished, running {todo} more on {device}.")


def span_text(seconds: float) -> str:
    """A duration for a person: '6 h 10 m', '12 m 5 s', '40 s'."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s // 60 % 60:02d} m"
    return f"{s // 60} m {s % 60:02d} s" if s >= 60 else f"{s} s"


def estimate_line(*, estimate: CallEstimate, device: str, budget_left: float | None) -> Text:
    """What the trials left should take, from probes of their configurations; what bounds it. Under
    a --budget shorter than that, the budget is the estimate: its end goes to the best model."""
    work = (
        f"{estimate.trials} trials x up to {estimate.epochs} epochs ~ {span_text(estimate.seconds)} on "
        f"{device} ({span_text(estimate.epoch_s)} an epoch on average over {estimate.probed} "
        "configurations probed)"
    )
    if budget_left is None:
        text = f"Estimate: {work}; pruning shortens it, --budget DURATION bounds it (e.g. --budget 20m)."
    elif budget_left < estimate.seconds:
        text = (
            f"Estimate: {span_text(budget_left)}, the --budget left ({work}); its end goes to the best "
            "configuration, trained longer."
        )
    else:
        text = f"Estimate: {work}; pruning shortens it, --budget ends it within {span_text(budget_left)}."
    return Text(text, style="dim", no_wrap=False, overflow="fold")


def trial_line(*, row: TrialRow, counts: Counts, best: TrialRow | None) -> Text:
    style = {link.COMPLETE: "green", link.PRUNED: "yellow", link.FAIL: "red"}.get(row.state, "")
    line = Text(f"trial {row.number:>4} ", style="bold")
    line.append(f"{row.state:<8}", style=style)
    value = pct(row.value) if row.state == link.COMPLETE else _last_value(row)
    line.append(f" {value:>7}  {seconds_text(row.seconds)}")
    if row.attrs.get(link.FAIL_REASON):
        line.append(f"  ({row.attrs[link.FAIL_REASON]})", style="dim")
    line.append(f"  [{counts.finished} finished, best {pct(best.value) if best else '-'}]", style="dim")
    return line


def _last_value(row: TrialRow) -> str:
    if not row.curve:
        return "-"
    epoch = max(row.curve)
    return f"{pct(row.curve[epoch])}@{epoch}"


def seconds_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def best_line(best: TrialRow | None) -> Text:
    if best is None:
        return Text("best: none yet", style="dim")
    # Wrapped, not cropped: the live display would cut the line at the terminal's edge.
    text = f"best: trial {best.number} {pct(best.value)}  {config_text(best.params)}"
    return Text(text, no_wrap=False, overflow="fold")


def trials_table(rows: Sequence[TrialRow], *, title: str = "", limit: int = 0) -> Table:
    """Trials sorted by value (complete first), then the others by number."""
    ranked = sorted(rows, key=lambda r: (r.state != link.COMPLETE, -(r.value or 0.0), r.number))
    table = Table(title=title or None, header_style="bold", show_edge=False)
    for name, justify in (
        ("#", "right"),
        ("state", "left"),
        ("val acc", "right"),
        ("epochs", "right"),
        ("time", "right"),
        ("s/epoch", "right"),
        ("size", "right"),
        ("params", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in ranked[: limit or None]:
        value = pct(r.value) if r.state == link.COMPLETE else _last_value(r)
        epochs = str(r.attrs.get(link.EPOCHS_RUN, max(r.curve) if r.curve else "-"))
        cost, size = epoch_cost_text(r.attrs), size_text(r.attrs)
        cells = (value, epochs, seconds_text(r.seconds), cost, size, config_text(r.params))
        table.add_row(str(r.number), r.state, *cells)
    return whole(table)


def size_text(attrs: dict[str, Any]) -> str:
    """A model's parameters and its CPU latency at batch 1, e.g. '7.1k 0.21ms' ('-': unknown)."""
    parameters, ms = attrs.get(link.PARAMETERS), attrs.get(link.CPU_LATENCY_MS)
    if parameters is None:
        return "-"
    n = int(parameters)
    count = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)
    return count if ms is None else f"{count} {float(ms):.2f}ms"


def epoch_cost_text(attrs: dict[str, Any]) -> str:
    """A trial's seconds per epoch, predicted before it trained -> measured ('-' where unknown)."""
    predicted, measured = attrs.get(link.PREDICTED_EPOCH_S), attrs.get(link.MEASURED_EPOCH_S)
    if predicted is None and measured is None:
        return "-"
    return "→".join("-" if v is None else f"{float(v):.1f}" for v in (predicted, measured))


def search_summary(outcome: SearchOutcome, *, storage: str, resume: str) -> RenderableType:
    c = outcome.counts
    done = f"{c.finished}/{outcome.target} finished trials"
    head = {
        "target": f"Study '{outcome.study}' reached {done}.",
        "already-done": f"Study '{outcome.study}' already has {done}; raise --trials to run more.",
        "timeout": f"Timeout: study '{outcome.study}' has {done}.",
        "budget": f"Budget spent: study '{outcome.study}' has {done}.",
        "interrupted": f"Interrupted: study '{outcome.study}' has {done}.",
        "created": f"Study '{outcome.study}' is ready (target {outcome.target}, {done}): start the workers.",
    }[outcome.stopped]
    # This call's work and the study's totals, said apart: a resumed study's counts are not this call's.
    detail = f"This call ran {outcome.ran} trial(s)."
    if outcome.recovered:
        detail += f" {outcome.recovered} trial(s) of a dead process marked failed."
    detail += f" The study: {c.complete} complete, {c.pruned} pruned, {c.failed} failed."
    parts: list[RenderableType] = [Text(head, style="bold"), Text(detail, style="dim")]
    if outcome.placement:
        parts.append(
            Text(
                f"{outcome.placement}. Workers' logs: /tmp/ray/session_latest/logs/worker-*.out on each node",
                style="dim",
            )
        )
    if outcome.top:
        parts.append(trials_table(outcome.top, title="Top trials"))
    if outcome.best is not None:
        parts.append(
            Text(
                f"Best: trial {outcome.best.number}, validation accuracy {pct(outcome.best.value)}",
                style="bold green",
            )
        )
        parts.append(Text(config_text(outcome.best.params)))
    if outcome.stopped in ("interrupted", "timeout", "budget"):
        parts.append(Text(f"Resume with: {resume}", style="bold"))
    if outcome.stopped == "created":
        worker = resume.replace(" --create-only", "")
        parts.append(
            Text(f"Each worker (one per GPU, on any host sharing both stores) runs: {worker}", style="bold")
        )
    return Group(*parts)


def studies_table(rows: Sequence[StudySummary], *, storage: str) -> Table:
    table = Table(title=f"Studies in {storage}", header_style="bold", show_edge=False)
    for name in ("study", "complete", "pruned", "failed", "running", "best val acc", "test used"):
        table.add_column(name, justify="left" if name == "study" else "right")
    for r in rows:
        c = r.counts
        used = str(r.test_uses) + (f" ({r.split_uses} on its split)" if r.split_uses != r.test_uses else "")
        used += ", stale" if r.stale else ""  # the tested trial is no longer the best
        table.add_row(
            r.name, str(c.complete), str(c.pruned), str(c.failed), str(c.running), pct(r.best), used
        )
    return whole(table)


def check_report(findings: Sequence[Finding], *, repaired: Sequence[Finding], studies: int) -> RenderableType:
    if not findings:
        return Text(f"{studies} study(ies) checked: both stores agree, nothing to repair.", style="green")
    table = Table(header_style="bold", show_edge=False)
    for name in ("study", "disagreement", "repair"):
        table.add_column(name)
    for f in findings:
        done = f in repaired
        action = (
            ("repaired: " if done else "--repair would ") + f.repair
            if f.repair
            else "none safe: look by hand"
        )
        table.add_row(
            f.study, f.what, Text(action, style="green" if done else "yellow" if f.repair else "red")
        )
    left = len(findings) - len(repaired)
    summary = f"{len(findings)} disagreement(s), {len(repaired)} repaired, {left} left"
    return Group(whole(table), Text(summary, style="bold"))
