"""report.json and report.html of a Lightning-path export, from the run directory alone
(config.yaml, best_trial.json, trials.parquet and best/export.json,
best/test_predictions.parquet): `hpo report RUN_DIR` rebuilds them."""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from hpo.config import load_run_config
from hpo.export import plots
from hpo.export.report import PLOTS_DIR, REPORT_HTML, REPORT_JSON, _clean, cross_validation
from hpo.export.report_html import STYLE, _figure_html, fmt, table
from hpo.export.report_pareto import (
    FRONT_CAPTION,
    front_figure,
    pareto_report,
    pareto_section,
    write_front,
)
from hpo.export.sweep_stats import history, sweep_summary
from hpo.rundir import BestFiles, RunDirectory


def fold_curves(trials: pd.DataFrame, trial_id: str, names: list[str]) -> dict[str, list]:
    """Per-fold values of ``names`` at every epoch of one trial (its trials.parquet rows)."""
    rows = trials[(trials["trial_id"] == trial_id) & (trials["epoch"] > 0)].sort_values("epoch")
    curves = {"epoch": rows["epoch"].astype(int).tolist()}
    for name in names:
        column = f"fold_{name}"
        if column in rows:
            curves[name] = [list(v) for v in rows[column]]
    return curves


MISCLASSIFIED_SHOWN = 8


def curves_figure(curves: dict[str, list], names: list[str], best_epochs: list[int] | None):
    present = [n for n in names if n in curves]
    if not present or not curves["epoch"]:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(5.5 * len(present), 4), squeeze=False)
    epochs = curves["epoch"]
    for ax, name in zip(axes[0], present):
        folds = len(curves[name][0])
        for fold in range(folds):
            values = [row[fold] for row in curves[name]]
            (line,) = ax.plot(epochs, values, label=f"fold {fold}")
            best = (best_epochs or [None] * folds)[fold]
            if best in epochs:
                ax.plot(best, values[epochs.index(best)], "o", color=line.get_color())
        ax.set(xlabel="epoch", ylabel=name, title=f"Best trial: {name} per fold")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


MISCLASSIFIED_SHOWN = 8


def misclassified(best_dir: Path, names: list[str] | None) -> list[dict[str, Any]]:
    """A few test rows the model got wrong, with what they are (the ``example`` column of
    test_predictions.parquet: an image file, a text), most confident mistakes first."""
    path = best_dir / "test_predictions.parquet"
    if not path.is_file():
        return []
    frame = pd.read_parquet(path)
    if "example" not in frame or "target" not in frame:
        return []
    wrong = frame[frame["prediction"].astype(str) != frame["target"].astype(str)]
    proba = [c for c in frame.columns if c.startswith("proba_")]
    if proba:
        wrong = wrong.assign(_confidence=wrong[proba].max(axis=1))
        wrong = wrong.sort_values("_confidence", ascending=False)
    label = lambda v: names[int(v)] if names and str(v).isdigit() else str(v)  # noqa: E731
    return [
        {
            "example": str(row["example"]),
            "target": label(row["target"]),
            "prediction": label(row["prediction"]),
            "confidence": float(row["_confidence"]) if proba else None,
        }
        for _, row in wrong.head(MISCLASSIFIED_SHOWN).iterrows()
    ]


def build_lightning_report(
    run_dir: Path, staged: Path | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = load_run_config(run_dir)
    run = RunDirectory(Path(run_dir))
    best_dir = staged or run.best
    best, trials = run.read_best_trial(), run.read_trials()
    export = run.read_json(best_dir / BestFiles.EXPORT)
    manifest = run.read_json(best_dir / BestFiles.MANIFEST)
    sweep, table_ = sweep_summary(trials, cfg, export.get("sweep_wall_s"))
    names = [best["metric"]] + (["val_loss"] if best["metric"] != "val_loss" else [])
    curves = fold_curves(trials, best["trial_id"], names)
    warnings = []
    if not export["onnx"]["exported"]:
        warnings.append(
            {
                "kind": "onnx",
                "message": f"no ONNX model: to_onnx failed ({export['onnx']['reason']}); "
                "best/model.ckpt is the exported model.",
            }  # fmt: skip
        )
    elif not export["onnx"]["passed"]:
        warnings.append({"kind": "onnx", "message": "ONNX outputs differ from torch's; see onnx."})
    report = {
        "run_dir": str(run_dir),
        "engine": "lightning",
        "task": manifest["task"],
        "classes": manifest.get("classes"),
        "class_names": manifest.get("class_names"),
        "preprocessing": manifest.get("preprocessing"),
        "misclassified": misclassified(best_dir, manifest.get("class_names")),
        "model": {"target": manifest["model_target"], "data": manifest["data_target"]},
        "best_trial": {k: best[k] for k in ("trial_id", "status", "epoch", "params")},
        "cross_validation": cross_validation(best),
        "refit": export["refit"],
        "test": export["test"],
        "lightning_test": export.get("lightning_test"),
        "from_scratch": export.get("from_scratch"),
        "fold_curves": curves,
        "sweep": sweep,
        "checkpoint_check": export["checkpoint_check"],
        "onnx": export["onnx"],
        "inference": export["inference"],
        "export_seconds": export["export_seconds"],
        "artifacts": export["artifacts"],
        "warnings": warnings,
        "pareto": pareto_report(trials, cfg),
        "predict_input": (manifest.get("predict") or {}).get("input"),  # text: INPUT is a file
    }
    extra = {"trials": table_, "history": history(table_, cfg.mode), "names": names}
    extra["front"] = front_figure(trials, cfg) if report["pareto"] else None
    return _clean(report), extra


def _html(report: dict[str, Any], extra: dict[str, Any], plots_dir: Path) -> str:
    cv, test = report["cross_validation"], report["test"]
    if report["task"] == "classification" and "confusion_matrix" in test:
        outcome = plots.confusion(
            test["confusion_matrix"], report.get("class_names") or report["classes"]
        )
    else:
        outcome = None
    figures = [
        (curves_figure(report["fold_curves"], extra["names"], cv.get("fold_best_epochs")),
         "learning_curves", "The best trial's folds, epoch by epoch (dots: early-stopping epoch)."),
        (outcome, "test_outcome", "Confusion matrix on the held-out test rows."),
        (plots.sweep_history(extra["history"], cv["metric"]), "sweep_history",
         "Best value so far against epochs spent."),
        (plots.epochs_per_trial(extra["trials"], report["sweep"]["scheduler"]), "epochs_per_trial",
         "Epochs each trial got before it completed or the scheduler stopped it."),
    ]  # fmt: skip
    shown = [(k, v) for k, v in test.items() if isinstance(v, (int, float))]
    inf = report["inference"] or {}
    inference_rows = [[k, v["p50_ms"], v["p95_ms"]] for k, v in inf.items() if isinstance(v, dict)]
    onnx = report["onnx"]
    warnings = "".join(f"<div class=warn>{escape(w['message'])}</div>" for w in report["warnings"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>hpo report</title>
<style>{STYLE}</style></head><body>
<h1>hpo report: {escape(report["model"]["target"])} on {escape(report["model"]["data"])}</h1>
<p class=muted>{escape(report["run_dir"])} · a real lightning.Trainer per fold</p>
{warnings}
<h2>Test (held-out rows no trial saw, refit model)</h2>{table(["metric", "value"], shown)}
{scratch_html(report)}{per_class_html(report)}{misclassified_html(report)}
<h2>Cross-validation</h2><p>{escape(cv["metric"])} {fmt(cv["mean"])} ± {fmt(cv["std"])}
over {len(cv["per_fold"] or [])} folds; per fold {fmt(cv["per_fold"])}, early-stopping
epochs {fmt(cv["fold_best_epochs"])}.</p>
{pareto_section(report, _figure_html(extra["front"], "pareto_front", FRONT_CAPTION, plots_dir))}
<h2>Best hyperparameters</h2>{table(["key", "value"], list(report["best_trial"]["params"].items()))}
<h2>The exported model</h2><p>Refit on {fmt(report["refit"]["rows"])} rows for
{report["refit"]["epochs"]} epochs ({escape(report["refit"]["how"])}) in
{fmt(report["refit"]["fit_s"])} s. model.ckpt loads with weights_only=True:
{fmt(report["checkpoint_check"]["weights_only_load"])}. ONNX:
{fmt(onnx.get("passed")) if onnx["exported"] else "not exported: " + escape(onnx.get("reason", ""))}.</p>
{table(["file", "bytes"], list(report["artifacts"].items()))}
<h2>Inference on this machine (one thread)</h2>{table(["what", "p50 ms", "p95 ms"], inference_rows)}
<h2>Plots</h2>{"".join(_figure_html(f, n, c, plots_dir) for f, n, c in figures)}
<h2>The sweep</h2>{table(["", ""], [[k, v] for k, v in report["sweep"].items() if not isinstance(v, dict)])}
</body></html>"""


def scratch_html(report: dict[str, Any]) -> str:
    """Fine-tuned vs the same configuration from random weights (same rows, epochs, test)."""
    scratch = (report.get("from_scratch") or {}).get("test")
    if not scratch:
        return ""
    keys = [
        k for k in ("accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "r2") if k in scratch
    ]
    rows = [[k, report["test"].get(k), scratch[k]] for k in keys]
    return (
        "<h3>Fine-tuned vs from scratch (same configuration and epochs, random weights)</h3>"
        + table(["metric", "fine-tuned", "from scratch"], rows)
    )


def per_class_html(report: dict[str, Any]) -> str:
    per_class = (report.get("test") or {}).get("per_class")
    if not per_class:
        return ""
    names = report.get("class_names")
    rows = [
        [names[int(c)] if names and str(c).isdigit() else c, v["precision"], v["recall"],
         v["f1"], v["support"]]
        for c, v in per_class.items()
    ]  # fmt: skip
    return "<h3>Per class (test)</h3>" + table(
        ["class", "precision", "recall", "F1", "support"], rows
    )


def thumbnail(path: str, size: int = 96) -> str | None:
    """A small PNG of an image file, base64 for the HTML page; None if it is not one."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = size / max(img.size)
            img = img.resize(
                (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                Image.Resampling.NEAREST,
            )
            buffer = io.BytesIO()
            img.save(buffer, format="PNG")
    except (OSError, ValueError):
        return None
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def misclassified_html(report: dict[str, Any]) -> str:
    """Misclassified test examples: thumbnails for image files, snippets for text."""
    shown = report.get("misclassified") or []
    if not shown:
        return ""
    cells = []
    for item in shown:
        encoded = thumbnail(item["example"])
        what = (
            f'<img alt="test example" src="data:image/png;base64,{encoded}">'
            if encoded
            else f"<q>{escape(item['example'][:200])}</q>"
        )
        confidence = "" if item["confidence"] is None else f" ({item['confidence']:.2f})"
        cells.append(
            f"<figure>{what}<figcaption>{escape(item['target'])} predicted as "
            f"{escape(item['prediction'])}{confidence}<br><span class=muted>"
            f"{escape(Path(item['example']).name if encoded else '')}</span></figcaption></figure>"
        )
    return "<h3>Misclassified test examples (most confident first)</h3>" + "".join(cells)


def write_lightning_report(
    run_dir: str | Path, staged: Path | None = None
) -> tuple[dict[str, Any], Path]:
    """report.json and report.html in RUN_DIR/best (or the export's staging folder)."""
    run_dir = Path(run_dir).resolve()
    report, extra = build_lightning_report(run_dir, staged)
    run = RunDirectory(run_dir)
    best_dir = staged or run.best
    write_front(run.read_trials(), load_run_config(run_dir), best_dir)
    (best_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    plots_dir = best_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    path = best_dir / REPORT_HTML
    path.write_text(_html(report, extra, plots_dir))
    return report, path
