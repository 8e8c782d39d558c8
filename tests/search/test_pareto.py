"""Multi-objective studies (`--objective accuracy,params`): the front, the rung rule that prunes a
trial dominated within its size class, `--pick` taking the one test look, the report's front, the
parent run's front, and a resumed study."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hpo.search.pareto import front, hypervolume, most_accurate_within, rung_reason, size_class
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import TrialRow
from hpo.stores.spec import read_spec
from tests.helpers import assert_one_line_error, hpo, open_study, search


def point(number: int, accuracy: float, params: int, *, curve: dict[int, float] | None = None) -> TrialRow:
    return TrialRow(
        number=number,
        state="COMPLETE",
        value=accuracy,
        params={},
        attrs={link.PARAMETERS: params},
        seconds=1.0,
        started="-",
        curve=curve or {},
        values=(accuracy, float(params)),
    )


def test_the_front_keeps_what_nothing_beats_smallest_first() -> None:
    rows = [point(0, 0.99, 50_000), point(1, 0.98, 8_000), point(2, 0.97, 9_000), point(3, 0.95, 3_000)]
    rows.append(point(4, 0.98, 8_000))  # the same point as trial 1: the first stands for both
    assert [r.number for r in front(rows)] == [3, 1, 0]
    assert most_accurate_within(rows, max_params=9_000) == rows[1]
    assert most_accurate_within(rows, max_params=1_000) is None


def test_the_hypervolume_counts_what_the_front_dominates_in_decades_of_size() -> None:
    reference = (0.9, 1e6)
    assert hypervolume([], reference=reference) == 0.0
    assert hypervolume([(0.99, 1e4)], reference=reference) == pytest.approx(2 * 0.09)
    # A second point that is beaten (larger and less accurate) adds nothing; a smaller one adds a strip.
    two = [(0.99, 1e4), (0.95, 1e5), (0.95, 1e3)]
    assert hypervolume(two, reference=reference) == pytest.approx(2 * 0.09 + 3 * 0.05 - 2 * 0.05)
    assert hypervolume([(0.85, 1e3), (0.99, 2e6)], reference=reference) == 0.0  # beyond the reference


def test_a_trial_is_judged_against_its_size_class_at_each_rung() -> None:
    """Three small trials at epoch 1 (the top third: one) and a large, better one in another class."""
    rows = [point(0, 0.9, 5_000, curve={1: 0.90}), point(1, 0.9, 6_000, curve={1: 0.85})]
    rows.append(point(2, 0.99, 500_000, curve={1: 0.97}))
    assert size_class(5_000) == size_class(6_000) != size_class(500_000)
    judge: dict[str, Any] = {"size": 7_000.0, "number": 9, "rows": rows, "attr": link.PARAMETERS}
    assert rung_reason(epoch=1, accuracy=0.91, **judge) == ""  # the best of its class
    reason = rung_reason(epoch=1, accuracy=0.88, **judge)
    assert reason == (
        "rung 1: 88.00% validation accuracy is not in the top 1 of the 3 trials of its size class at "
        "epoch 1, and trial 0, no larger, was more accurate there"
    )
    assert rung_reason(epoch=2, accuracy=0.10, **judge) == ""  # not a rung
    # Smaller than every more accurate peer: not dominated, so it goes on whatever its rank.
    assert rung_reason(epoch=1, accuracy=0.88, **{**judge, "size": 4_000.0}) == ""
    large = {**judge, "size": 600_000.0}  # ranked against the large trial only
    assert rung_reason(epoch=1, accuracy=0.98, **large) == ""
    assert "top 1 of the 2 trials" in rung_reason(epoch=1, accuracy=0.96, **large)


@pytest.mark.slow
def test_a_multi_objective_study_from_search_to_the_test_look(workdir: Path, data_dir: Path) -> None:
    outcome = search(data_dir, trials=4, epochs=2, warm_start=False, objective="accuracy,params")
    study = open_study("s")
    assert study.multi and outcome.counts.finished == 4
    complete = study.rows(states=("COMPLETE",))
    assert complete and all(r.values == (r.value, float(r.attrs[link.PARAMETERS])) for r in complete)
    assert all(r.curve for r in complete)  # per-epoch accuracy kept although Optuna's report refuses
    points = front(study.rows())
    parent = MlflowStore().run(study.attr(link.PARENT_RUN_ID))
    assert parent.tags["pareto_front"] == ",".join(str(r.number) for r in points)
    local = MlflowStore().client.download_artifacts(parent.run_id, "pareto_front.json")
    assert [p["trial"] for p in json.loads(Path(local).read_text())["front"]] == [r.number for r in points]

    code, out, err = hpo("best")
    assert code == 0 and "Pareto front (accuracy,params)" in out, out + err
    assert_one_line_error(
        *hpo("best", "--evaluate-test", "--ensemble", "2", "--data-dir", data_dir),
        "--ensemble averages the most accurate trials",
    )
    chosen = points[0].number  # the smallest model of the front, chosen on validation
    code, out, err = hpo("best", "--evaluate-test", "--pick", str(chosen), "--data-dir", data_dir)
    assert code == 0 and "test accuracy" in out, out + err
    (look,) = link.lockbox_records(open_study("s"))
    assert look["trial"] == chosen

    code, out, err = hpo("report", "--out", "r")
    assert code == 0 and Path("r/pareto_front.png").stat().st_size > 0, out + err

    search(data_dir, trials=6, epochs=2, warm_start=False, objective="accuracy,params")  # resumed
    assert open_study("s").counts().finished == 6
    with pytest.raises(Exception, match="different objective"):
        search(data_dir, trials=8, epochs=2, warm_start=False, objective="accuracy,latency")


def test_pick_and_max_params_choose_a_complete_trial(searched: Path) -> None:
    assert_one_line_error(*hpo("best", "--pick", "99"), "--pick 99: study 's' has no complete trial 99")
    assert_one_line_error(*hpo("best", "--max-params", "1"), "no complete trial has at most 1 parameters")
    assert_one_line_error(*hpo("best", "--pick", "0", "--max-params", "9"), "--pick and --max-params")
    best = open_study("s").best()
    assert best is not None
    code, out, err = hpo("best", "--max-params", "100000000")  # every trial fits: the best one
    found = re.search(r"chosen trial\s+(\d+)", out)
    assert code == 0 and found is not None and found.group(1) == str(best.number), out + err


def test_a_multi_objective_study_draws_small_models_from_its_first_trial(
    workdir: Path, data_dir: Path
) -> None:
    """Without a space file, the compact space and its warm starts (7,154 and 3,306 parameters)."""
    search(data_dir, trials=2, epochs=1, space="study", model="cnn", objective="accuracy,params")
    study = open_study("s")
    spec = read_spec(study)
    assert spec is not None and spec.space["cnn_conv"] == {"choices": ["full", "separable"]}
    rows = sorted(study.rows(), key=lambda r: r.number)
    assert [r.attrs.get(link.WARM_START) for r in rows] == ["tiny-cnn-gap", "separable-cnn-gap"]
    assert [int(r.attrs[link.PARAMETERS]) for r in rows] == [7_154, 3_306]
    assert rows[1].params["cnn_conv"] == "separable"


def test_the_report_of_a_front_with_no_complete_trial_says_so(workdir: Path, data_dir: Path) -> None:
    """Every trial over --max-params, so pruned untrained: the front's figure is drawn all the same."""
    from hpo.config import ModelLimits

    limits = ModelLimits(max_params=1)
    search(data_dir, trials=2, warm_start=False, objective="accuracy,params", limits=limits)
    code, out, err = hpo("report", "--out", "r")
    assert code == 0 and Path("r/pareto_front.png").stat().st_size > 0, out + err
