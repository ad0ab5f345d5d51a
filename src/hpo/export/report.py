"""report.json and report.html, built from the run directory alone.

Inputs: the run's config.yaml, best_trial.json and trials.parquet, and what the export
measured and wrote into ``best/`` (export.json: refit, checks, inference figures,
permutation importance; test_predictions.parquet: the test split's predictions and true
values, from which the test metrics are computed here). `hpo report RUN_DIR` runs
``write_report`` again and gets the same report.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpo.config import load_run_config
from hpo.errors import HPOError
from hpo.export import pitfalls
from hpo.export.baselines import baseline_warnings, comparison
from hpo.export.metrics import evaluate_predictions, heldout_metric_name
from hpo.export.predictor import MANIFEST_FILE
from hpo.export.report_pareto import pareto_report, write_front
from hpo.export.sweep_stats import (
    history,
    importance_basis,
    param_importances,
    rebuild_study,
    sweep_summary,
)
from hpo.rundir import BEST, BestFiles, RunDirectory
from hpo.space import build_search_space

BEST_DIR = BEST
EXPORT_FILE = BestFiles.EXPORT
TEST_PREDICTIONS_FILE = BestFiles.TEST_PREDICTIONS
TARGET_COLUMN = "target"
ROW_COLUMN = "row"  # the test row's row number in the input file (0 = first data row)
REPORT_JSON = BestFiles.REPORT_JSON
REPORT_HTML = BestFiles.REPORT_HTML
PLOTS_DIR = BestFiles.PLOTS
TASK_METRICS = {
    "classification": ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"),
    "regression": ("rmse", "mae", "r2", "loss"),
}


@dataclass
class RunFiles:
    """Everything a report is built from."""

    run_dir: Path
    cfg: Any
    best: dict[str, Any]
    trials: pd.DataFrame
    manifest: dict[str, Any]
    export: dict[str, Any]
    test_predictions: pd.DataFrame
    quality: dict[str, Any] | None = None  # data_quality.json (None: a run without one)
    staged: Path | None = None  # the export's staging folder, before it becomes best/

    @property
    def best_dir(self) -> Path:
        return self.staged or self.run_dir / BEST_DIR


def read_run(run_dir: str | Path, staged: Path | None = None) -> RunFiles:
    run = RunDirectory(Path(run_dir).resolve())
    run_dir = run.root
    cfg = load_run_config(run_dir)
    best_dir = staged or run.best
    needed = [run.best_trial, run.trials]
    needed += [best_dir / name for name in (MANIFEST_FILE, EXPORT_FILE, TEST_PREDICTIONS_FILE)]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise HPOError(
            f"{run_dir} is not a finished, exported run: {', '.join(missing)} missing. Pass "
            "the run directory `hpo sweep` printed (the export runs at the end of the sweep)."
        )
    return RunFiles(
        run_dir=run_dir,
        cfg=cfg,
        best=run.read_best_trial(),
        trials=run.read_trials(),
        manifest=json.loads((best_dir / MANIFEST_FILE).read_text()),
        export=json.loads((best_dir / EXPORT_FILE).read_text()),
        test_predictions=pd.read_parquet(best_dir / TEST_PREDICTIONS_FILE),
        quality=run.read_json(run.data_quality),  # (None: a run without one)
        staged=staged,
    )


def data_warnings(quality: dict[str, Any] | None) -> list[dict[str, str]]:
    """The data checks' warnings (leakage suspects, duplicates kept, ...), as the
    report's warnings."""
    if not quality:
        return []
    return [
        {"kind": f"data: {c['title']}", "message": _check_message(c)}
        for c in quality["checks"]
        if c["status"] == "warning"
    ]


def _check_message(check: dict[str, Any]) -> str:
    listed = ", ".join(f"{k} ({v})" for k, v in list(check["columns"].items())[:10])
    rows = ", ".join(str(r) for r in check["rows"][:10])
    what = listed or (f"rows {rows}" if rows else "")
    return (
        f"{check['count']:g} {check['unit']}"
        + (f": {what}" if what else "")
        + (f". {check['detail']}" if check["detail"] else "")
    )


def heldout_metrics(run: RunFiles) -> dict[str, Any]:
    frame = run.test_predictions
    return evaluate_predictions(run.manifest, frame[TARGET_COLUMN], frame)


def cross_validation(best: dict[str, Any]) -> dict[str, Any]:
    metrics = best.get("metrics") or {}
    names = [n for n in metrics if not n.endswith("_std")]
    return {
        "metric": best["metric"],
        "mode": best["mode"],
        "epoch": best["epoch"],
        "mean": best["cv_mean"],
        "std": best.get("cv_std"),
        "per_fold": best.get("fold_scores"),
        "fold_best_epochs": best.get("fold_best_epochs"),
        "metrics": {n: {"mean": metrics[n], "std": metrics.get(f"{n}_std")} for n in names},
    }


def overfitting(run: RunFiles, test: dict[str, Any]) -> dict[str, Any]:
    """Train vs CV vs test per metric, and the best CV score's optimism about the test."""
    task, metrics, train = run.manifest["task"], run.best.get("metrics") or {}, run.export["train"]
    table = {
        name: {
            "train": train.get(name),
            "cv": metrics.get("val_loss" if name == "loss" else f"val_{name}"),
            "test": test.get(name),
        }
        for name in TASK_METRICS[task]
    }
    metric, mode = run.best["metric"], run.best["mode"]
    test_name = heldout_metric_name(metric)
    cv, test_value = run.best["cv_mean"], test.get(test_name)
    optimism = None
    if cv is not None and test_value is not None:
        optimism = test_value - cv if mode == "min" else cv - test_value
    return {
        "metric": metric,
        "test_metric": test_name,
        "train": train.get(test_name),
        "cv": cv,
        "cv_std": run.best.get("cv_std"),
        "test": test_value,
        "optimism": optimism,
        "optimism_means": f"how much better the best trial's CV {metric} looked than its test "
        f"{test_name} (positive: CV was optimistic)",
        "table": table,
    }


def build_report(run: RunFiles) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report (JSON-ready) and the extra data its plots need."""
    cfg, best, export = run.cfg, run.best, run.export
    test = heldout_metrics(run)
    over = overfitting(run, test)
    sweep, trials = sweep_summary(run.trials, cfg, export.get("sweep_wall_s"))
    study, budget = rebuild_study(run.trials, cfg)
    importances, note = param_importances(study, int(cfg.seed))
    basis = importance_basis(study, budget, int(cfg.trainer.max_epochs))
    space, _ = build_search_space(cfg.search_space)
    warnings = [
        *data_warnings(run.quality),
        *pitfalls.export_checks(export["onnx_check"], export["preprocessing_check"]),
        *pitfalls.train_test_gap(run.manifest["task"], export["train"], test),
        *pitfalls.heldout_below_cv(over),
        *pitfalls.boundary_values(space, best["params"]),
        *pitfalls.imbalance_with_accuracy(best["metric"], export.get("class_counts")),
        *baseline_warnings(run.manifest["task"], test, export.get("baselines")),
    ]
    report = {
        "run_dir": str(run.run_dir),
        "data": {**export["data"], "file": cfg.data.get("path")},
        "data_quality": run.quality,
        "task": run.manifest["task"],
        "classes": run.manifest.get("classes"),
        "best_trial": {
            "trial_id": best["trial_id"],
            "status": best.get("status"),
            "epoch": best["epoch"],
            "params": best["params"],
        },
        "cross_validation": cross_validation(best),
        "model": export["model"],
        # regression: what the model learned for the target (hpo.data.target_transform)
        "target_transform": run.manifest.get("target_transform"),
        "test": test,
        "train": export["train"],
        "overfitting": over,
        "baselines": comparison(run.manifest["task"], best, test, export),
        "calibration": export.get("calibration"),
        "sweep": sweep,
        "hyperparameter_importance": {
            "method": "fANOVA (optuna.importance.FanovaImportanceEvaluator) over the "
            f"{basis['trials']} trials that reported, valued at the common budget of {budget} "
            f"of {basis['max_epochs']} epoch(s)",
            "common_budget_epochs": budget,
            **basis,
            "importances": importances,
            "note": note,
        },
        "permutation_importance": export["permutation_importance"],
        "onnx_check": export["onnx_check"],
        "preprocessing_check": export["preprocessing_check"],
        "inference": export["inference"],
        "export_seconds": export["export_seconds"],
        "artifacts": export["artifacts"],
        "warnings": warnings,
        "pareto": pareto_report(run.trials, cfg),
    }
    extra = {"trials": trials, "history": history(trials, cfg.mode), "study": study}
    return _clean(report), extra


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(run_dir: str | Path, staged: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Build report.json, the plots and report.html in RUN_DIR/best (or the export's
    staging folder ``staged``); return the report and the HTML's path."""
    from hpo.export.report_html import write_html  # matplotlib is only needed here

    run = read_run(run_dir, staged)
    report, extra = build_report(run)
    write_front(run.trials, run.cfg, run.best_dir)
    (run.best_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    html_path = write_html(run, report, extra, run.best_dir / REPORT_HTML)
    return report, html_path
