"""`hpo search` on synthetic data: target totals, resume rules, pruning, MLflow structure."""

from __future__ import annotations

from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from hpo.errors import StudyError
from hpo.search import warm_start
from hpo.stores import link
from hpo.stores.link import OUTCOMES
from hpo.stores.mlflow import MlflowStore
from hpo.stores.spec import read_spec, write_spec
from tests.helpers import FAST, FIXED, STORE, assert_one_line_error, hpo, open_study, search
from tests.synthetic import VAL_SIZE


def test_trials_is_a_target_total(workdir: Path, data_dir: Path, device: str) -> None:
    first = search(data_dir, trials=3, device=device)
    assert (first.ran, first.counts.finished, first.stopped) == (3, 3, "target")
    again = search(data_dir, trials=3, device=device)
    assert (again.ran, again.stopped) == (0, "already-done")
    more = search(data_dir, trials=5, device=device)
    assert (more.ran, more.counts.finished) == (2, 5)
    assert more.best is not None and more.best.value is not None and more.best.value > 0.5


def test_resume_refuses_incomparable_settings(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1)
    with pytest.raises(StudyError, match=r"different val_size.*--study NEW_NAME"):
        search(data_dir, trials=2, val_size=VAL_SIZE + 100)
    with pytest.raises(StudyError, match="different epochs"):
        search(data_dir, trials=2, epochs=3)
    with pytest.raises(StudyError, match="different space"):
        search(data_dir, trials=2, space={**FAST, "lr": {"low": 0.01, "high": 0.1}})
    # safe to change: timeout, seed, sampler, pruner
    ok = search(data_dir, trials=2, timeout=600, seed=5, sampler="random", pruner="none")
    assert ok.ran == 1


def test_spec_records_how_the_study_was_made(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1)
    spec = read_spec(open_study("s"))
    assert spec is not None
    assert spec.dataset == "mnist" and spec.val_size == VAL_SIZE and spec.epochs == 2
    assert spec.space["family"] == {"choices": ["mlp"]} and len(spec.fingerprint) == 16
    assert spec.hpo_version and spec.created


def test_pruning_and_mlflow_parent_child_structure(workdir: Path, data_dir: Path) -> None:
    # Learning rates down to 1e-7 cannot learn in 3 epochs: the median pruner stops them.
    space = {
        **FAST,
        "lr": {"low": 1e-7, "high": 0.3, "log": True},
        "optimizer": ["sgd"],
        "schedule": ["none"],
    }
    out = search(data_dir, trials=12, epochs=3, space=space, sampler="random", seed=1)
    assert out.counts.pruned >= 1 and out.counts.complete >= 1 and out.counts.failed == 0

    handle = open_study("s")
    store = MlflowStore()
    runs = {r.run_id: r for r in store.runs(store.experiment("s"))}
    parent_id = handle.attr(link.PARENT_RUN_ID)
    parent = runs.pop(parent_id)
    assert parent.status == "FINISHED" and parent.tags["hpo_role"] == "study"
    assert parent.metrics["best_val_accuracy"] == pytest.approx(out.best.value)
    assert len(runs) == 12
    for row in handle.rows():
        run = runs[row.attrs[link.RUN_ID]]
        assert run.name == f"trial-{row.number:04d}" and run.tags["trial_number"] == str(row.number)
        assert run.tags["mlflow.parentRunId"] == parent_id and run.tags["state"] == row.state
        assert (row.state, run.status) == OUTCOMES[row.attrs[link.OUTCOME]]
        assert run.tags["outcome"] == row.attrs[link.OUTCOME]
        epochs = [s for s, _ in store.metric_history(run.run_id, "val_accuracy")]
        if row.state == "PRUNED":
            assert run.tags["pruned_at_epoch"] == str(max(epochs)) and max(epochs) < 3
        else:
            assert epochs == [1, 2, 3] and "checkpoint" in _artifacts(store, run.run_id)
            assert row.value == pytest.approx(
                max(v for _, v in store.metric_history(run.run_id, "val_accuracy"))
            )


def _artifacts(store: MlflowStore, run_id: str) -> list[str]:
    return [a.path for a in store.client.list_artifacts(run_id)]


def test_diverging_trials_end_with_reason_and_study_continues(workdir: Path, data_dir: Path) -> None:
    space = {
        **FAST,
        "lr": {"low": 1e4, "high": 1e5, "log": True},
        "optimizer": ["sgd"],
        "momentum": [0.9],
        "schedule": ["none"],
    }
    out = search(data_dir, trials=2, space=space)
    assert out.counts.finished == 2 and out.counts.pruned == 2
    rows = open_study("s").rows()
    assert all(r.attrs["fail_reason"].startswith("diverged") for r in rows)


def test_space_file_narrows_and_is_recorded(workdir: Path, data_dir: Path) -> None:
    Path("space.toml").write_text(
        'optimizer = "adam"\nactivation = ["relu", "gelu"]\n[mlp_layers]\nlow = 1\nhigh = 1\n'
    )
    code, out, err = hpo(
        "search",
        "--space",
        "space.toml",
        "--data-dir",
        data_dir,
        "--val-size",
        VAL_SIZE,
        "--trials",
        2,
        "--epochs",
        1,
        "--model",
        "mlp",
        "--device",
        "cpu",
    )
    assert code == 0, out + err
    handle = open_study("mnist-mlp")
    assert read_spec(handle).space["optimizer"] == {"choices": ["adam"]}  # type: ignore[union-attr]
    assert {r.params["optimizer"] for r in handle.rows()} == {"adam"}
    assert all(
        r.params["activation"] in ("relu", "gelu") and r.params["mlp_layers"] == 1 for r in handle.rows()
    )
    assert "Study 'mnist-mlp' reached 2/2" in out and "Best: trial" in out


def test_studies_and_trials_commands(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=2)
    code, out, _ = hpo("studies")
    assert code == 0 and "s " in out and "2 " in out
    code, out, _ = hpo("trials", "--study", "s")
    assert code == 0 and "COMPLETE" in out and "mlp" in out
    code, out, err = hpo("trials", "--study", "nope")
    assert_one_line_error(code, out, err, "no study named 'nope'")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "-3"], "--trials must be at least 1"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--sampler", "grid"], "'grid' is not one of 'tpe'"),
        (["--pruner", "wilcoxon"], "'wilcoxon' is not one of"),
        (["--model", "rnn"], "'rnn' is not one of 'mlp', 'cnn', 'resnet'"),
        (["--storage", "not-a-url"], "malformed --storage"),
        (  # without the postgres extra, the line names the missing driver instead
            ["--storage", "postgresql://nobody@127.0.0.1:1/none"],
            "cannot open study storage" if find_spec("psycopg") else "no driver for --storage",
        ),
        (["--timeout", "-1"], "--timeout must be a positive"),
        (["--trial-timeout", "0"], "--trial-timeout must be a positive"),
    ],
)
def test_bad_search_input_is_one_line(workdir: Path, data_dir: Path, args: list[str], needle: str) -> None:
    code, out, err = hpo("search", "--data-dir", data_dir, *args)
    assert_one_line_error(code, out, err, needle)


@pytest.mark.parametrize(
    ("sampler", "pruner"), [("tpe", "hyperband"), ("random", "sha"), ("gp", "median"), ("cmaes", "none")]
)
def test_every_sampler_and_pruner_runs(workdir: Path, data_dir: Path, sampler: str, pruner: str) -> None:
    out = search(data_dir, trials=3, epochs=2, sampler=sampler, pruner=pruner)
    assert out.counts.finished == 3 and out.counts.failed == 0


def test_timeout_stops_starting_trials(workdir: Path, data_dir: Path) -> None:
    out = search(data_dir, trials=500, epochs=1, timeout=1.0)
    assert out.stopped == "timeout" and 1 <= out.ran < 500


def losses(study: str, number: int) -> list[tuple[int, float]]:
    """The trial's per-epoch validation loss (finer than accuracy, which saturates here)."""
    row = open_study(study).row(number)
    return MlflowStore().metric_history(link.run_id(row), "val_loss")


def test_a_trial_depends_on_its_own_seed_not_on_what_ran_before(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=2, space=FIXED, study="a", pruner="none", seed=0)
    search(data_dir, trials=1, space=FIXED, study="b", pruner="none", seed=1)
    # trial 1 of "a" (seed 0 + 1) ran after trial 0; trial 0 of "b" (seed 1 + 0) ran first
    assert losses("a", 1) == losses("b", 0)
    assert losses("a", 0) != losses("a", 1)
    row = open_study("a").row(1)
    assert row.attrs[link.SEED] == 1


def test_chance_level_trials_are_pruned_after_one_epoch(workdir: Path, data_dir: Path) -> None:
    stuck = {**FIXED, "lr": [1e-9], "augment": "none", "dropout": [0.0]}  # cannot learn anything
    out = search(data_dir, trials=2, epochs=4, space=stuck)  # median pruner: would wait 5 trials
    assert out.counts.pruned == 2
    for row in open_study("s").rows():
        assert list(row.curve) == [1] and row.attrs[link.FAIL_REASON].startswith("chance level: ")


def test_trial_timeout_stops_a_trial_after_the_epoch_that_passes_it(workdir: Path, data_dir: Path) -> None:
    """--trial-timeout: a slow trial ends as pruned (a result, cut short) with the reason, and the
    study still reaches its target; the pruner alone would let it run (median waits 5 trials)."""
    out = search(data_dir, trials=2, epochs=4, space=FIXED, trial_timeout=1e-6)
    assert out.counts.pruned == 2 and out.counts.finished == 2
    for row in open_study("s").rows():
        assert list(row.curve) == [1] and "past --trial-timeout 1e-06 s" in row.attrs[link.FAIL_REASON]
    search(data_dir, trials=3, epochs=4, space=FIXED, pruner="none", trial_timeout=3600)  # resumed
    rows = open_study("s").rows()
    assert rows[2].state == "COMPLETE" and list(rows[2].curve) == [1, 2, 3, 4]


def test_a_new_study_tries_the_known_good_configurations_first(workdir: Path, data_dir: Path) -> None:
    from hpo.search.warm_start import POINTS

    out = search(data_dir, trials=3, epochs=1, space={}, pruner="none")
    rows = open_study("s").rows()
    mlp_points = [name for name, p in POINTS.items() if p["family"] == "mlp"]
    assert [r.attrs.get(link.WARM_START) for r in rows[:2]] == mlp_points and out.counts.finished == 3
    for row, name in zip(rows, mlp_points, strict=False):
        assert row.params == POINTS[name]
    assert link.WARM_START not in rows[2].attrs  # then the sampler takes over
    search(data_dir, trials=1, epochs=1, space={}, study="cold", warm_start=False)
    cold = open_study("cold").rows()
    assert link.WARM_START not in cold[0].attrs


def test_the_quick_cnn_warm_start_trains_its_own_shorter_schedule(workdir: Path, data_dir: Path) -> None:
    """The default space's third warm start, the unaugmented CNN, trains 3 of --epochs 4 (recorded
    as its schedule, which `hpo reproduce` reads); the others train --epochs; with --epochs 2 it
    trains 2 and records no schedule of its own."""
    search(data_dir, trials=3, epochs=4, space="study", pruner="none")
    rows = open_study("s").rows()
    assert [r.attrs[link.WARM_START] for r in rows] == ["textbook-mlp", "wide-mlp-shift", "small-cnn-quick"]
    assert [list(r.curve) for r in rows] == [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3]]
    assert rows[2].attrs[link.SCHEDULE_EPOCHS] == 3 and link.SCHEDULE_EPOCHS not in rows[0].attrs
    assert rows[2].params["augment"] == "none" and rows[2].params["family"] == "cnn"
    assert MlflowStore().run(link.run_id(rows[2])).params["epochs"] == "3"
    search(data_dir, trials=3, epochs=2, space="study", pruner="none", study="two")
    quick = open_study("two").rows()[2]
    assert list(quick.curve) == [1, 2] and link.SCHEDULE_EPOCHS not in quick.attrs


def test_the_long_form_warm_start_is_skipped_on_a_budget_it_would_crowd(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the quick CNN completed, the augmented CNN (its long form) is skipped before training
    when its epochs are predicted to take more than LONG_SHARE of the --budget (here any time: 0);
    recorded as a cost skip, so the sampler learns from it; the sampler's trials follow."""
    monkeypatch.setattr(warm_start, "LONG_SHARE", 0.0)
    search(data_dir, trials=5, epochs=2, space="study", pruner="none", budget=600.0)
    rows = open_study("s").rows()
    assert [r.attrs.get(link.WARM_START) for r in rows[:4]] == [*list(warm_start.POINTS)[:4]]
    affine = rows[3]
    assert affine.attrs[link.WARM_START] == "small-cnn-affine" and affine.state == link.PRUNED
    assert str(affine.attrs[link.FAIL_REASON]).startswith("cost: warm start 'small-cnn-affine' is predicted")
    assert affine.curve == {} and rows[2].state == link.COMPLETE


def test_trials_on_their_own_schedule_stay_out_of_the_pruners_rungs(workdir: Path, data_dir: Path) -> None:
    """Successive halving files a trial's epoch at a rung when it asks the pruner: the 3-epoch warm
    start never does (its epoch 3 is annealed, a 4-epoch trial's is not), the others do."""
    import optuna

    search(data_dir, trials=3, epochs=4, space="study", pruner="sha")
    trials = optuna.load_study(study_name="s", storage=STORE).trials
    assert trials[2].user_attrs[link.WARM_START] == "small-cnn-quick"
    assert not any(key.startswith("completed_rung") for key in trials[2].system_attrs)
    assert "completed_rung_0" in trials[0].system_attrs
    assert sorted(trials[2].intermediate_values) == [1, 2, 3]


def test_a_new_study_starts_from_the_best_of_the_earlier_ones(workdir: Path, data_dir: Path) -> None:
    """The fast space holds none of hpo's points: a new study's one warm start is the best trial of
    the store's earlier study; a space that cannot draw it gets none."""
    search(data_dir, trials=3, epochs=1, study="first", warm_start=False)
    best = open_study("first").best()
    assert best is not None and best.value is not None
    search(data_dir, trials=1, epochs=1, study="second")
    (row,) = open_study("second").rows()
    assert row.params == best.params
    assert (
        row.attrs[link.WARM_START] == f"best of study 'first' (trial {best.number}, {100 * best.value:.2f}%)"
    )
    narrow = {"mlp_layers": 1, "mlp_width": [128], "batch_size": [64]}
    search(data_dir, trials=1, epochs=1, space=narrow, study="third")
    assert link.WARM_START not in open_study("third").rows()[0].attrs


def test_a_search_stopped_by_an_error_says_how_to_resume(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.errors import TrackingError
    from hpo.search import trial

    def unwritable(*_a: object, **_k: object) -> None:
        raise TrackingError("MLflow store: cannot log metrics: disk is full")

    monkeypatch.setattr(trial, "fit_config", unwritable)
    Path("space.toml").write_text("mlp_layers = 1\n")
    code, out, err = hpo(
        "search", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--trials", 2, "--model", "mlp",
        "--space", "space.toml", "--device", "cpu", "--study", "e",
    )  # fmt: skip
    assert_one_line_error(code, out, err, "disk is full", "resume with: hpo search --data-dir")
    handle = open_study("e")
    assert handle.counts().failed == 1
    assert MlflowStore().run(link.parent_run_id(handle)).status == "FAILED"


def test_resume_without_a_space_file_goes_on_with_the_studys_own_space(workdir: Path, data_dir: Path) -> None:
    """Even one recorded by an older hpo, before `lr` split per optimizer family and CNN blocks
    gained convs: a newer default space must not lock the study out."""
    search(data_dir, trials=1, space=FIXED)
    study = open_study("s")
    recorded = read_spec(study)
    assert recorded is not None
    old = {
        k: v for k, v in recorded.space.items() if k not in ("lr_sgd", "lr_adaptive", "cnn_convs", "cnn_head")
    }
    write_spec(study, replace(recorded, space={**old, "lr": recorded.space["lr_sgd"]}))
    out = search(data_dir, trials=2, space="study")
    assert (out.ran, out.counts.finished) == (1, 2)
    last = max(study.rows(), key=lambda r: r.number)
    assert last.params["lr_sgd"] == 0.05 and last.params["mlp_width_0"] == 32  # FIXED, as recorded
    with pytest.raises(StudyError, match="different space"):  # a space file still must match
        search(data_dir, trials=3, space=FAST)


def test_bf16_where_it_cannot_run_is_refused_before_anything_is_recorded(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MPS machine (faked: none here) with --precision bf16: one line, no study, no run."""
    import torch

    from hpo.errors import DeviceError
    from hpo.search import run, train

    mps = torch.device("mps")
    monkeypatch.setattr(run, "resolve_device", lambda name: mps)
    with pytest.raises(DeviceError, match="--precision bf16 runs on cpu and cuda, not mps"):
        search(data_dir, trials=1, precision="bf16")
    monkeypatch.setattr(train, "resolve_device", lambda name: mps)
    code, out, err = hpo("train", "--data-dir", data_dir, "--precision", "bf16")
    assert_one_line_error(code, out, err, "--precision bf16 runs on cpu and cuda")
    assert not (workdir / "studies").exists() and MlflowStore().find_experiment("train") is None


def test_an_interrupted_warm_start_runs_again_on_resume(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warm starts are queued only when a study is new: a Ctrl-C during one used to lose it for
    good. An interrupted trial is queued again with its parameters (and its warm-start name)."""
    from hpo.search import trial

    real, calls = trial.fit_config, {"n": 0}

    def interrupted_once(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(**kwargs)

    monkeypatch.setattr(trial, "fit_config", interrupted_once)
    space = {"mlp_layers": {"low": 2, "high": 2}, "mlp_width": {"low": 64, "high": 300}, "batch_size": [128]}
    assert search(data_dir, trials=2, space=space, warm_start=True).stopped == "interrupted"
    again = search(data_dir, trials=2, space=space, warm_start=True)
    assert again.stopped == "target"
    warm = [r for r in open_study("s").rows() if r.attrs.get(link.WARM_START) == "textbook-mlp"]
    assert [r.state for r in warm] == ["FAIL", "COMPLETE"]
    assert warm[1].params == warm[0].params and warm[1].attrs[link.RETRY_OF] == warm[0].number


def test_a_space_that_cannot_fit_is_refused_before_anything_is_made(workdir: Path, data_dir: Path) -> None:
    """Widths up to 65536 and 6 layers passed validation; a trial then asked for 17 GB and more."""
    Path("huge.toml").write_text(
        "mlp_layers = { low = 1, high = 6 }\nmlp_width = { low = 32, high = 65536, log = true }\n"
    )
    code, out, err = hpo(
        "search", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--space", "huge.toml", "--model", "mlp"
    )
    assert_one_line_error(code, out, err, "the space file allows an MLP of", "parameters", "narrow mlp_width")
    assert code == 2 and not Path("studies").exists()


def test_a_trial_too_large_for_the_device_is_refused_before_it_is_built(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.core import footprint
    from hpo.search import trial

    built: list[object] = []
    monkeypatch.setattr(footprint, "free_bytes", lambda device: 2**16)  # a 64 KiB device
    monkeypatch.setattr(trial, "build_model", lambda cfg: built.append(cfg))
    out = search(data_dir, trials=2)
    assert out.counts.pruned == 2 and built == []
    for row in open_study("s").rows():
        assert (
            row.attrs[link.FAIL_REASON].startswith("too large for cpu: ")
            and "64 KiB is free" in row.attrs[link.FAIL_REASON]
        )
