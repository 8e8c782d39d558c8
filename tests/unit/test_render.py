"""The CLI's renderers and live views, fed plain values (no stores, no training)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hpo.cli import render, render_results, views
from hpo.cli.views import LiveView, PlainView, search_view
from hpo.core.engine import EpochMetrics
from hpo.search.budget import CallEstimate
from hpo.search.session import SearchOutcome
from hpo.stores import link
from hpo.stores.optuna import Counts, TrialRow
from hpo.stores.spec import StudySpec
from hpo.stores.workspace import BestInfo, StudySummary

MLP_PARAMS: dict[str, Any] = {
    "family": "mlp",
    "activation": "relu",
    "dropout": 0.0,
    "batch_norm": True,
    "mlp_layers": 2,
    "mlp_width_0": 512,
    "mlp_width_1": 128,
    "optimizer": "adam",
    "lr": 0.001,
    "weight_decay": 1e-6,
    "schedule": "cosine",
    "batch_size": 128,
}
CNN_PARAMS: dict[str, Any] = {
    **{k: v for k, v in MLP_PARAMS.items() if not k.startswith("mlp_")},
    "family": "cnn",
    "batch_norm": False,
    "dropout": 0.25,
    "cnn_blocks": 2,
    "cnn_channels_0": 32,
    "cnn_channels_1": 64,
    "cnn_kernel": 3,
    "cnn_fc_width": 128,
    "optimizer": "sgd",
    "momentum": 0.9,
    "schedule": "exponential",
    "gamma": 0.8,
}


def row(number: int, state: str, value: float | None, **attrs: Any) -> TrialRow:
    return TrialRow(
        number=number,
        state=state,
        value=value,
        params=MLP_PARAMS,
        attrs=attrs,
        seconds=1.5,
        started="",
        curve={1: 0.5, 2: value or 0.6},
    )


def text_of(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_config_text_rebuilds_architecture_from_recorded_params() -> None:
    assert render.config_text(MLP_PARAMS) == "mlp 512-128 relu bn | adam lr=0.001 wd=1e-06 cosine | bs 128"
    assert render.config_text(CNN_PARAMS) == (
        "cnn 32-64 k3 fc128 relu drop=0.25 | sgd lr=0.001 m=0.9 wd=1e-06 exponential(0.8) | bs 128"
    )
    assert render.config_text({"family": "mlp"}) == "-"  # a trial that died while sampling


def test_trials_table_ranks_complete_first_and_shows_reasons() -> None:
    rows = [
        row(0, "PRUNED", None),
        row(1, "COMPLETE", 0.91),
        row(2, "COMPLETE", 0.95, **{link.EPOCHS_RUN: 7}),
    ]
    lines = [line for line in text_of(render.trials_table(rows)).splitlines() if line.strip()[:1].isdigit()]
    assert [line.split()[0] for line in lines] == ["2", "1", "0"]
    assert "95.00%" in lines[0] and " 7 " in lines[0] and "60.00%@2" in lines[2]
    assert " - " in lines[0]  # no cost recorded (a trial from before the cost model)
    costed = row(4, "COMPLETE", 0.9, **{link.PREDICTED_EPOCH_S: 2.84, link.MEASURED_EPOCH_S: 3.1})
    costed.attrs.update({link.PARAMETERS: 7070, link.CPU_LATENCY_MS: 0.213})
    shown = text_of(render.trials_table([costed]))
    assert "2.8→3.1" in shown and "7.1k 0.21ms" in shown
    skipped = row(5, "PRUNED", None, **{link.PREDICTED_EPOCH_S: 600.0})
    assert "600.0→-" in text_of(render.trials_table([skipped]))
    failed = row(3, "FAIL", None, **{link.FAIL_REASON: "out of memory on cuda"})
    line = text_of(render.trial_line(row=failed, counts=Counts(complete=2, failed=1), best=rows[2]))
    assert "FAIL" in line and "(out of memory on cuda)" in line and "[2 finished, best 95.00%]" in line


def test_studies_table_and_best_view() -> None:
    summary = StudySummary(
        name="mnist-mlp", counts=Counts(complete=3, pruned=2), best=0.97, test_uses=1, split_uses=1
    )
    table = text_of(render.studies_table([summary], storage="sqlite:///x.db"))
    assert "mnist-mlp" in table and "97.00%" in table and table.rstrip().endswith("1")
    shared = StudySummary(**{**summary.__dict__, "split_uses": 3, "stale": True})
    assert text_of(render.studies_table([shared], storage="x")).rstrip().endswith("1 (3 on its split), stale")
    best = row(4, "COMPLETE", 0.97, **{link.BEST_EPOCH: 9, link.DEVICE: "cpu"})
    spec = StudySpec(dataset="mnist", val_size=10_000, split_seed=0, fingerprint="abc", epochs=10, space={})
    info = BestInfo(
        study="mnist-mlp", trial=best, run_id="r1", checkpoint_uri="file:///c", spec=spec, evaluations=[]
    )
    text = text_of(render_results.best_view(info))
    assert "never used" in text and "mnist / val 10000, seed 0, fingerprint abc" in text and "r1" in text
    used = {"time": "2026-01-01 10:00:00", "trial": 4, "accuracy": 0.965}
    text = text_of(render_results.best_view(BestInfo(**{**info.__dict__, "evaluations": [used]})))
    assert "used 1 time(s)" in text and "96.50%" in text and "stale" not in text
    older = {**used, "trial": 2}
    text = text_of(
        render_results.best_view(BestInfo(**{**info.__dict__, "evaluations": [older], "split_looks": 2}))
    )
    assert "stale: that was trial 2; the best trial is now 4, never tested" in " ".join(text.split())
    assert "(2 looks at this split across studies)" in " ".join(text.split())
    both = {"evaluations": [used, older]}  # the shown trial was looked at, then another one
    text = " ".join(text_of(render_results.best_view(BestInfo(**{**info.__dict__, **both}))).split())
    assert "stale" not in text
    assert "trial 4 was looked at too: 2026-01-01 10:00:00, test accuracy 96.50%" in text
    other = text_of(render_results.best_view(BestInfo(**{**info.__dict__, "split_looks": 1})))
    assert "never by this study, but 1 time(s) by another study on the same split" in " ".join(other.split())


def test_search_summary_prints_resume_command_when_interrupted() -> None:
    best = row(2, "COMPLETE", 0.95)
    outcome = SearchOutcome(
        study="s",
        target=10,
        counts=Counts(complete=3, failed=1),
        ran=3,
        stopped="interrupted",
        best=best,
        top=[best],
        recovered=1,
    )
    text = text_of(render.search_summary(outcome, storage="x", resume="hpo search --trials 10"))
    assert "Interrupted: study 's' has 3/10 finished trials." in text
    assert (
        "1 trial(s) of a dead process marked failed" in text and "Resume with: hpo search --trials 10" in text
    )
    done = SearchOutcome(**{**outcome.__dict__, "stopped": "target"})
    assert "Resume with" not in text_of(render.search_summary(done, storage="x", resume="r"))


def test_plain_view_prints_a_line_per_event() -> None:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    view = search_view(console, quiet=False)
    assert isinstance(view, PlainView) and not isinstance(view, LiveView)  # not a terminal
    with view:
        view.started(
            study="s",
            target=3,
            counts=Counts(complete=1),
            best=None,
            resumed=True,
            device="cpu",
            estimate=None,
            deadline=None,
        )
        view.trial_finished(row=row(1, "COMPLETE", 0.9), counts=Counts(complete=2), best=None)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Resuming study 's': 1/3 trials finished, running 2 more on cpu." in out and "trial    1" in out


def test_live_view_renders_progress() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    done = row(0, "COMPLETE", 0.9812)
    with LiveView(console) as view:
        view.started(
            study="s",
            target=2,
            counts=Counts(),
            best=None,
            resumed=False,
            device="cpu",
            estimate=None,
            deadline=None,
        )
        view.trial_started(number=0, params=done.params, predicted_s=None)
        view.epoch(number=0, metrics=EpochMetrics(1, 0.5, 0.8, 0.4, 0.9812, 1.0, 0.001), max_epochs=3)
        view.trial_finished(row=done, counts=Counts(complete=1), best=done)
        view.live.refresh()
    text = buffer.getvalue()
    assert "Starting study 's': 0/2" in text and "trial    0" in text and "98.12%" in text
    assert "best: trial 0" in text and "mlp 512-128" in text


def test_the_eta_counts_down_from_this_calls_seconds_per_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU trial takes minutes: far past the 30 s within which Rich's own column estimates a
    speed, so its ETA stayed -:--:--. Ours: 100 s per trial, 3 trials left -> 5 minutes."""
    clock = [1000.0]
    monkeypatch.setattr(views, "_now", lambda: clock[0])
    done = row(0, "COMPLETE", 0.9812)
    with LiveView(Console(file=io.StringIO(), force_terminal=True, width=160)) as view:
        view.started(
            study="s",
            target=4,
            counts=Counts(),
            best=None,
            resumed=False,
            device="cpu",
            estimate=None,
            deadline=None,
        )
        assert "ETA -:--:--" in text_of(view.overall)
        clock[0] += 100
        view.trial_finished(row=done, counts=Counts(complete=1), best=done)
        assert "ETA 0:05:00" in text_of(view.overall)
        clock[0] += 60
        assert "ETA 0:04:00" in text_of(view.overall)


def test_the_eta_starts_from_the_probes_and_the_budget_caps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any trial ends, the ETA is the estimate (4 trials x 10 epochs x 30 s = 20 min); a
    trial predicted at 60 s then leaves 3 more at 300 s each; a --budget ending sooner caps it."""
    clock = [1000.0]
    monkeypatch.setattr(views, "_now", lambda: clock[0])
    estimate = CallEstimate(trials=4, epochs=10, epoch_s=30.0, probed=5)
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with LiveView(console) as view:
        view.started(
            study="s",
            target=4,
            counts=Counts(),
            best=None,
            resumed=False,
            device="cpu",
            estimate=estimate,
            deadline=None,
        )
        assert "ETA 0:20:00" in text_of(view.overall)
        view.trial_started(number=0, params=MLP_PARAMS, predicted_s=60.0)
        assert "ETA 0:16:00" in text_of(view.overall)
    assert "4 trials x up to 10 epochs ~ 20 m 00 s on cpu" in console.file.getvalue()  # type: ignore[attr-defined]
    with LiveView(Console(file=io.StringIO(), force_terminal=True, width=200)) as view:
        deadline = time.time() + 120
        view.started(
            study="s",
            target=4,
            counts=Counts(),
            best=None,
            resumed=False,
            device="cpu",
            estimate=estimate,
            deadline=deadline,
        )
        assert "ETA 0:02:00" in text_of(view.overall) or "ETA 0:01:59" in text_of(view.overall)


def test_a_resumed_study_shows_its_best_and_counts_from_the_start() -> None:
    best = row(7, "COMPLETE", 0.982)
    with LiveView(Console(file=io.StringIO(), force_terminal=True, width=160)) as view:
        view.started(
            study="s",
            target=10,
            counts=Counts(complete=3, pruned=2, failed=1),
            best=best,
            resumed=True,
            device="cpu",
            estimate=None,
            deadline=None,
        )
        assert "pruned 2 failed 1" in text_of(view.overall) and "5/10" in text_of(view.overall)
        assert "best: trial 7 98.20%" in text_of(view.best_line)


def test_a_long_epoch_shows_its_batches() -> None:
    with LiveView(Console(file=io.StringIO(), force_terminal=True, width=160)) as view:
        view.started(
            study="s",
            target=2,
            counts=Counts(),
            best=None,
            resumed=False,
            device="cpu",
            estimate=None,
            deadline=None,
        )
        view.trial_started(number=0, params=MLP_PARAMS, predicted_s=None)
        view.progress(number=0, epoch=2, epochs=3, batch=40, batches=100)
        shown = text_of(view.current)
    assert "trial 0 epoch 2/3" in shown and "batch 40/100" in shown


def test_the_engine_tells_progress_within_an_epoch(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches done and batches in the epoch, host-side counts, at most every PROGRESS_S."""
    import torch

    from hpo.config import DataConfig, ModelConfig, OptimConfig
    from hpo.core import engine
    from hpo.core.data import load_train_val
    from hpo.core.models import build_model

    monkeypatch.setattr(engine, "PROGRESS_S", 0.0)  # every batch, for the test
    data = load_train_val(DataConfig(data_dir=str(data_dir), val_size=200), device=torch.device("cpu"))
    seen: list[tuple[int, int]] = []
    engine.fit(
        model=build_model(ModelConfig(hidden=(16,))),
        data=data,
        optim=OptimConfig(),
        epochs=1,
        batch_size=100,
        seed=0,
        on_progress=lambda batch, batches: seen.append((batch, batches)),
    )
    assert seen == [(b, 10) for b in range(1, 11)]  # 1,000 training images in batches of 100


def test_a_value_or_path_is_never_cut() -> None:
    params = {**CNN_PARAMS, "augment": "affine", "label_smoothing": 0.1}
    best = row(3, "COMPLETE", 0.98)
    best = TrialRow(**{**best.__dict__, "params": params})
    narrow = Console(file=io.StringIO(), width=60, force_terminal=True, soft_wrap=True)
    with Live(render.best_line(best), console=narrow, transient=False):
        pass
    lines = narrow.file.getvalue().split("\x1b[2K")[-1]  # type: ignore[attr-defined]
    assert "ls=0.1" in lines and "…" not in lines
    path = (
        "file:///a/very/long/folder/name/that/goes/on/mlruns/artifacts/mnist-any/0123456789abcdef/checkpoint"
    )
    table = render.whole(Table("field", "value"))
    table.add_row("checkpoint", path)
    folded = text_of_width(table, 60)
    assert (
        "…" not in folded
        and "".join(line.strip(" │") for line in folded.splitlines()).count("0123456789abcdef") == 1
    )


def text_of_width(renderable: Any, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]
