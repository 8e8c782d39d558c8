"""`hpo check [--repair]`: every disagreement between the stores is found; safe ones are fixed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hpo.search.context import TrialContext
from hpo.search.trial import TrialRecorder
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import hpo, open_study, search


def test_a_clean_study_has_nothing_to_repair(searched: Path) -> None:
    code, out, _ = hpo("check")
    assert code == 0 and "both stores agree, nothing to repair" in out


def test_disagreements_are_reported_then_repaired(searched: Path) -> None:
    handle = open_study("s")
    first, second = handle.rows()
    store = MlflowStore()
    store.reopen(link.run_id(first))  # a COMPLETE trial's run left RUNNING
    store.end_run(link.run_id(second), status="KILLED")  # ... or closed with the wrong status
    _drop_run_id(second.number)  # a trial that lost its run id
    store.reopen(link.parent_run_id(handle))  # the parent run left RUNNING
    handle.set_attr(link.TEST_EVALUATIONS, [{"time": "t", "trial": 0, "run_id": "r", "accuracy": 0.9}])
    code, out, _ = hpo("check", "--study", "s")
    text = " ".join(out.split())
    assert code == 1 and "4 disagreement(s), 0 repaired, 4 left" in text
    assert f"trial {first.number} is COMPLETE but its run {link.run_id(first)} is RUNNING" in text
    assert f"trial {second.number} has no run id, but run {link.run_id(second)} names it" in text
    assert "RUNNING, no trial is" in text and "records 1 test look(s), its parent run says none" in text
    code, out, _ = hpo("check", "--repair")
    assert code == 1 and "3 repaired, 1 left" in " ".join(out.split()) and "look by hand" in out
    assert store.run(link.run_id(first)).status == "FINISHED"
    assert store.run(link.parent_run_id(handle)).status == "FINISHED"
    assert store.run(link.parent_run_id(handle)).tags[link.TEST_EVALUATIONS] == "1"


def _drop_run_id(number: int) -> None:
    """What Optuna's API refuses on a finished trial: remove its run id from the store file."""
    import sqlite3

    with sqlite3.connect("studies/hpo.db") as conn:
        conn.execute(
            "DELETE FROM trial_user_attributes WHERE key = ? AND trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ?)",
            (link.RUN_ID, number),
        )


def test_what_cannot_be_repaired_is_said_and_kept(searched: Path) -> None:
    run_id = link.run_id(open_study("s").row(0))
    folder = Path(MlflowStore().run(run_id).artifact_uri.removeprefix("file://")) / "checkpoint"
    shutil.rmtree(folder)
    code, out, _ = hpo("check", "--repair")
    text = " ".join(out.split())
    assert code == 1 and "checkpoint is missing" in text and "none safe: look by hand" in text
    assert open_study("s").row(0).state == "COMPLETE"  # nothing deleted


def test_a_failed_tag_write_never_leaves_a_run_running(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.errors import TrackingError

    real = MlflowStore.set_tags

    def flaky(self: MlflowStore, run_id: str, tags: dict[str, object]) -> None:
        if "outcome" in tags:  # the end-of-trial write
            raise TrackingError("MLflow store: cannot set tags: disk I/O error")
        real(self, run_id, tags)

    with monkeypatch.context() as patched:
        patched.setattr(MlflowStore, "set_tags", flaky)
        out = search(data_dir, trials=2)
    assert out.counts.complete == 2
    statuses = {MlflowStore().run(link.run_id(r)).status for r in open_study("s").rows()}
    assert statuses == {"FINISHED"}
    search(data_dir, trials=2)  # the next start reconciles what the failed writes left
    assert hpo("check")[0] == 0


def test_a_run_whose_trial_died_before_recording_its_id_is_closed(searched: Path) -> None:
    """SIGKILL between creating a trial's MLflow run and recording its id on the trial: the run is
    found by the trial number it is tagged with, and closed with its failed trial."""
    from hpo.stores.check import reconcile_statuses

    study = open_study("s")
    trial = study.claim(target=99, attrs={}, sampler="random", seed=0)
    assert trial is not None
    store = MlflowStore()
    tags = {link.ROLE: link.ROLE_TRIAL, link.TRIAL_NUMBER: str(trial.number)}
    run_id = store.start_run(experiment_id=store.experiment("s"), name="orphan", tags=tags)
    study.fail_running(trial.number, attrs={link.FAIL_REASON: "its process died"})
    assert reconcile_statuses(study=study, store=store) == 1
    assert store.run_status(run_id) == "KILLED"


def test_check_sees_a_running_trial_that_no_live_process_owns(trial_context: TrialContext) -> None:
    """A disk that filled up mid-trial leaves it RUNNING (nothing more could be written) while
    its process exits: `hpo check` skipped RUNNING trials and said the stores agreed."""
    from tests.search.test_recovery import dead_pid

    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None
    recorder.trial.set_attrs(**{link.OWNER_PID: dead_pid(), link.OWNER_TOKEN: ""})
    code, out, _ = hpo("check")
    assert code == 1 and f"trial {recorder.number} is RUNNING but process" in " ".join(out.split()), out
    code, out, _ = hpo("check", "--repair")
    assert code == 0, out
    row = open_study("t").row(recorder.number)
    assert row.state == "FAIL" and "died during the trial" in row.attrs[link.FAIL_REASON]
    assert MlflowStore().run(recorder.run.run_id).status == "KILLED"
    after = " ".join(hpo("check")[1].split())
    assert f"trial {recorder.number}" not in after, after  # (the fixture's session left its parent run open)


def test_an_export_left_pending_is_reported_and_marked_failed(
    searched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while the best trial's model is written leaves a PENDING logged model."""
    from hpo.stores import check

    store = MlflowStore()
    experiment = store.experiment("s")
    model = store.client.create_logged_model(experiment, name="model")  # as an export starts
    monkeypatch.setattr(check, "PENDING_S", 0)  # the test cannot wait ten minutes
    code, out, _ = hpo("check")
    assert code == 1 and f"logged model {model.model_id} is PENDING" in " ".join(out.split()), out
    assert hpo("check", "--repair")[0] == 0
    assert store.client.get_logged_model(model.model_id).status == "FAILED"


def test_the_best_trials_model_is_in_the_studys_experiment(searched: Path) -> None:
    """It was logged to MLflow's Default experiment, where the study's Models tab never showed it."""
    store = MlflowStore()
    models = store.client.search_logged_models(experiment_ids=[store.experiment("s")])
    best = open_study("s").best()
    assert best is not None
    assert [m.model_id for m in models] == [
        store.run(link.run_id(best)).tags[link.MODEL_URI].removeprefix("models:/")
    ]
    assert store.client.search_logged_models(experiment_ids=["0"]).to_list() == []
