"""The study's MLflow parent run, which tells the study's story where MLflow users look: created
once and reopened by each search call; per finished trial, metrics with the trial number as
step (`trial_val_accuracy`, `best_val_accuracy`: the optimization history, drawn by MLflow's own
charts); the best trial's run tagged `best=true` and linked from the parent's description."""

from __future__ import annotations

from hpo.stores import link
from hpo.stores.mlflow import NOTE, MlflowStore, run_url
from hpo.stores.optuna import StudyHandle, TrialRow
from hpo.stores.spec import read_spec

BEST = "best"  # run tag: "true" on the study's best trial, "false" once overtaken
PARETO_FRONT = "pareto_front"  # parent run tag: a multi-objective study's front, trial numbers
FRONT_FIGURES = (link.PARAMETERS, link.FLOPS, link.CPU_LATENCY_MS, link.CPU_SERVING_MS)


def open_parent_run(
    *, study: StudyHandle, store: MlflowStore, experiment_id: str, tags: dict[str, str]
) -> str:
    """The study's parent run, created once (with the study's spec) and reopened after that."""
    run_id = link.parent_run_id(study)
    if run_id and store.run_status(run_id) is not None:
        store.reopen(run_id)
        return run_id
    run_id = store.start_run(
        experiment_id=experiment_id,
        name=study.name,
        tags={**tags, link.ROLE: link.ROLE_STUDY, link.STUDY: study.name},
    )
    spec = read_spec(study)
    if spec is not None:
        attr = spec.to_attr()
        store.log_params(run_id, {f"study.{k}": v for k, v in attr.items() if k != "space"})
        store.log_dict(run_id, attr, "study_spec.json")
    study.set_attr(link.PARENT_RUN_ID, run_id)
    return run_id


def record_trial(
    *, store: MlflowStore, parent_run_id: str, experiment_id: str, row: TrialRow, best: TrialRow | None
) -> None:
    """One point of the optimization history; when `row` is the new best, move the best tag."""
    value = row.value if row.state == link.COMPLETE else (row.curve[max(row.curve)] if row.curve else None)
    metrics = {link.TRIAL_VALUE: value} if value is not None else {}
    if best is not None and best.value is not None:
        metrics[link.BEST_VALUE] = best.value
    if metrics:
        store.log_metrics(parent_run_id, metrics, step=row.number)
    if row.state != link.COMPLETE or best is None or best.number != row.number:
        return
    run_id = link.run_id(row)
    before = store.run(parent_run_id).tags.get(link.BEST_RUN_ID, "")
    if before and before != run_id:
        store.set_tags(before, {BEST: "false"})
    store.set_tags(run_id, {BEST: "true"})
    url = run_url(base="", experiment_id=experiment_id, run_id=run_id)
    note = f"Best so far: [trial {row.number}]({url}), validation accuracy {100 * (row.value or 0):.2f}%"
    store.set_tags(parent_run_id, {link.BEST_TRIAL: row.number, link.BEST_RUN_ID: run_id, NOTE: note})


def record_front(*, store: MlflowStore, parent_run_id: str, front: list[TrialRow]) -> None:
    """A multi-objective study's Pareto front on its parent run: `pareto_front.json` (each point's
    trial, validation accuracy and figures) and the tag `pareto_front` (its trial numbers)."""
    points = [
        {"trial": r.number, link.VAL_ACCURACY: r.value, **{k: r.attrs.get(k) for k in FRONT_FIGURES}}
        for r in front
    ]
    store.log_dict(parent_run_id, {"front": points}, "pareto_front.json")
    store.set_tags(parent_run_id, {PARETO_FRONT: ",".join(str(r.number) for r in front)})
