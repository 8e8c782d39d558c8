"""`hpo report`: the study's plots as PNG files, also logged to the study's MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpo import plots
from hpo.study import open_storage, param_importances, pick_study
from hpo.tracking import Tracker


@dataclass(frozen=True)
class StudyReport:
    study: str
    files: list[Path]
    logged_to: str  # MLflow run id of the study, "" when it has none


def write_report(
    *, storage: str, study: str | None, out_dir: Path | None, tracking_uri: str | None
) -> StudyReport:
    handle = pick_study(open_storage(storage), study)
    rows = handle.rows()
    folder = out_dir or Path("reports") / handle.name
    files = [
        plots.history_png(rows, path=folder / "optimization_history.png"),
        plots.importances_png(param_importances(handle), path=folder / "param_importances.png"),
        plots.parallel_png(rows, path=folder / "parallel_coordinates.png"),
        plots.curves_png(rows, path=folder / "validation_curves.png"),
    ]
    parent = str(handle.attr("mlflow_parent_run_id") or "")
    if parent:
        tracker = Tracker(uri=tracking_uri)
        if tracker.run_status(parent) is None:
            parent = ""
        for f in files if parent else []:
            tracker.log_file(parent, f, artifact_path="report")
    return StudyReport(study=handle.name, files=files, logged_to=parent)
