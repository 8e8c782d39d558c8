"""`hpo report`: a study's figures as PNG files and, with `html`, one self-contained HTML page
(every image embedded, so it can be mailed or archived as one file). Both are logged to the
study's MLflow parent run. The page shows what the stores recorded; it never reads the test
split (the lockbox's figures come from the evaluated run's artifacts)."""

from __future__ import annotations

import base64
import html
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hpo import __version__
from hpo.errors import TrackingError
from hpo.results import figures
from hpo.search.pareto import front
from hpo.search.space import config_from_params, describe
from hpo.search.space_extent import drawable
from hpo.stores import link
from hpo.stores.optuna import StudyHandle, TrialRow, param_importances
from hpo.stores.spec import read_spec
from hpo.stores.workspace import Baseline, Workspace

TOP = 10  # rows of the top-trials table


@dataclass(frozen=True)
class StudyReport:
    study: str
    files: list[Path]  # every file written, the HTML page last when there is one
    logged_to: str  # MLflow run id of the study, "" when it has none
    best: float | None = None  # best trial's validation accuracy
    baseline: Baseline | None = None  # the best classical baseline on the same split
    html: Path | None = None


FIGURE_TITLES = {
    "pareto_front": "Pareto front",
    "optimization_history": "Optimization history",
    "param_importances": "Hyperparameter importances",
    "parallel_coordinates": "Parallel coordinates",
    "validation_curves": "Validation curves",
}
SIZE_LABELS = {"params": "parameters", "latency": "CPU latency at batch 1 (ms)", "flops": "FLOPs per image"}


def write_report(
    *, ws: Workspace, study: str | None, out_dir: Path | None, html_page: bool = False
) -> StudyReport:
    """`hpo report`: the study's four figures (and with `html_page` the HTML page), written to
    `out_dir` (default reports/STUDY) and logged to the study's parent run under `report/`."""
    handle = ws.study(study)
    rows = handle.rows()
    folder = out_dir or Path("reports") / handle.name
    baselines = ws.baselines(handle.name)
    baseline = baselines[0] if baselines else None
    files = [
        figures.history_png(rows, path=folder / "optimization_history.png", baseline=baseline),
        figures.importances_png(param_importances(handle), path=folder / "param_importances.png"),
        figures.parallel_png(rows, path=folder / "parallel_coordinates.png"),
        figures.curves_png(rows, path=folder / "validation_curves.png"),
    ]
    spec = read_spec(handle)
    if handle.multi and spec is not None:  # the front, where a user looks first
        size = SIZE_LABELS[spec.objective.split(",")[1]]
        files.insert(
            0, figures.front_png(rows, front(rows), size_label=size, path=folder / "pareto_front.png")
        )
    page = None
    if html_page:
        page = folder / "report.html"
        page.write_text(_page(ws=ws, handle=handle, rows=rows, pngs=files, baselines=baselines))
        files.append(page)
    parent = link.parent_run_id(handle)
    if parent and ws.mlflow.run_status(parent) is None:
        parent = ""
    for f in files if parent else []:
        ws.mlflow.log_file(parent, f, artifact_path="report")
    best = handle.best()
    return StudyReport(
        study=handle.name,
        files=files,
        logged_to=parent,
        best=best.value if best else None,
        baseline=baseline,
        html=page,
    )


def _e(value: object) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _img(path: Path, *, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    image = f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
    return f"<figure>{image}<figcaption>{_e(alt)}</figcaption></figure>"


def _table(headers: list[str], rows: Sequence[Sequence[object]], *, numeric: set[int] | None = None) -> str:
    right = numeric or set()
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in right else ''}>{_e(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _config(row: TrialRow) -> str:
    cfg = config_from_params(row.params)
    return describe(cfg) if cfg else "-"


def _summary(handle: StudyHandle, rows: list[TrialRow]) -> str:
    spec = read_spec(handle)
    c = handle.counts()
    best = handle.best()
    facts: list[list[object]] = [
        ["best validation accuracy", f"{_pct(best.value)} (trial {best.number})" if best else "-"],
        ["trials", f"{c.complete} complete, {c.pruned} pruned, {c.failed} failed, {c.running} running"],
        ["target", handle.attr(link.TARGET, "-")],
    ]
    if spec is not None:
        facts += [
            [
                "dataset / split",
                f"{spec.dataset}, {spec.val_size} validation images, split seed {spec.split_seed}",
            ],
            ["split fingerprint", spec.fingerprint],
            ["max epochs per trial", spec.epochs],
            ["made", f"{spec.created} with hpo {spec.hpo_version}"],
        ]
    return _table([], facts)


def _space(handle: StudyHandle) -> str:
    spec = read_spec(handle)
    if spec is None:
        return "<p>No space recorded.</p>"
    rows: list[list[object]] = []
    for name, s in drawable(spec.space).items():  # an MLP-only study lists no cnn_* parameter
        if "choices" in s:
            rows.append([name, ", ".join(map(str, s["choices"]))])
        else:
            rows.append([name, f"{s['low']} – {s['high']}" + (" (log)" if s["log"] else "")])
    return _table(["parameter", "choices or range"], rows)


def _top(rows: list[TrialRow]) -> str:
    done = sorted((r for r in rows if r.state == link.COMPLETE), key=lambda r: -(r.value or 0.0))[:TOP]
    table = [
        [
            i + 1,
            r.number,
            _pct(r.value),
            r.attrs.get(link.BEST_EPOCH, "-"),
            f"{r.seconds or 0:.0f}",
            _config(r),
        ]
        for i, r in enumerate(done)
    ]
    return _table(
        ["rank", "trial", "val accuracy", "best epoch", "seconds", "configuration"],
        table,
        numeric={0, 1, 2, 3, 4},
    )


def _test(ws: Workspace, handle: StudyHandle) -> str:
    records = [r for r in link.lockbox_records(handle) if "accuracy" in r]
    if not records:
        return (
            "<p>The test set has not been used: <code>hpo best --evaluate-test</code> looks at it once.</p>"
        )
    last = records[-1]
    parts = [_table(
        ["when", "trial", "test accuracy", "test NLL", "ensemble (members)", "forced"],
        [[r["time"], r["trial"], _pct(r["accuracy"]), f"{r.get('nll', 0):.4f}",
          f"{_pct(r['ensemble_accuracy'])} ({', '.join(map(str, r['members']))})" if "members" in r else "-",
          "yes" if r.get("forced") else "no"] for r in records],
    )]  # fmt: skip
    if last.get("per_class"):
        per_class = [[name, _pct(acc), n] for name, acc, n in last["per_class"]]
        parts.append(
            "<h3>Per class (hardest first)</h3>"
            + _table(["class", "accuracy", "images"], per_class, numeric={1, 2})
        )
    parts += _test_images(ws, run_id=str(last.get("run_id", "")))
    return "".join(parts)


def _test_images(ws: Workspace, *, run_id: str) -> list[str]:
    """The lockbox's figures, fetched from the evaluated run (where the lockbox logged them)."""
    if not run_id:
        return []
    with tempfile.TemporaryDirectory(prefix="hpo-report-") as tmp:
        try:
            folder = ws.mlflow.download(run_id, "test", dst=Path(tmp))
        except TrackingError:
            return ["<p>The test figures of this run could not be read from the MLflow store.</p>"]
        return [
            _img(folder / name, alt=alt)
            for name, alt in (
                ("confusion_matrix.png", "Test confusion matrix"),
                ("misclassified.png", "Misclassified test images"),
            )
            if (folder / name).is_file()
        ]


def _baselines(baselines: list[Baseline]) -> str:
    if not baselines:
        return "<p>No classical baselines yet: <code>hpo baselines</code> fits them on the same split.</p>"
    rows = [[b.name, _pct(b.val_accuracy), f"{b.fit_seconds:.1f}"] for b in baselines]
    return _table(["baseline", "val accuracy", "fit seconds"], rows, numeric={1, 2})


def _page(
    *, ws: Workspace, handle: StudyHandle, rows: list[TrialRow], pngs: list[Path], baselines: list[Baseline]
) -> str:
    sections = [
        ("Summary", _summary(handle, rows)),
        ("Figures", "".join(_img(p, alt=FIGURE_TITLES.get(p.stem, p.stem)) for p in pngs)),
        (f"Top {TOP} trials", _top(rows)),
        ("Test set (lockbox)", _test(ws, handle)),
        ("Classical baselines (same split)", _baselines(baselines)),
        ("Search space", _space(handle)),
    ]
    body = "".join(f"<section><h2>{_e(title)}</h2>{content}</section>" for title, content in sections)
    made = time.strftime("%Y-%m-%d %H:%M")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>hpo study {_e(handle.name)}</title>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{_CSS}</style></head>"
        f"<body><h1>Study <code>{_e(handle.name)}</code></h1>{body}"
        f"<footer>Written by hpo {_e(__version__)} on {made} from the study and MLflow stores.</footer>"
        "</body></html>"
    )


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1040px;
  margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0;break-inside:avoid}img{max-width:100%;height:auto}figcaption{color:#666;font-size:.85em}
footer{margin-top:3em;color:#777;font-size:.85em}
@media print{body{max-width:none;margin:0;font-size:11pt}section{break-inside:auto}h2{break-after:avoid}}
"""
