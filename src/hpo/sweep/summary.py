"""The summary `hpo sweep` prints at the end."""

from __future__ import annotations

import sys

from hpo.rundir import BestFiles
from hpo.sweep.runner import SweepResult


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_lines(result: SweepResult, cfg) -> list[str]:
    # a URI run directory (s3://...) is staged locally; name the URI
    lines = [f"run directory: {result.extra.get('storage', result.run_dir)}"]
    c = result.counts
    total = sum(c.values())
    lines.append(
        f"trials: {total} ({c.get('completed', 0)} completed, {c.get('stopped', 0)} stopped by "
        f"{cfg.scheduler.name}, {c.get('failed', 0)} failed) in {result.wall_s:.0f}s"
    )
    pruned = result.extra.get("pruned")
    if pruned and pruned["checkpoints"]:
        lines.append(
            f"checkpoints of ended trials pruned: {pruned['checkpoints']} "
            f"({pruned['bytes'] / 1e6:.1f} MB freed)"
        )
    best = result.best
    if best is None:
        lines.append("no trial produced a result")
        return lines
    lines.append(f"best trial: {best['trial_id']} (epoch {best['epoch']}, {best['status']})")
    if best.get("pareto"):  # a multi-objective sweep: which front point, and why
        lines.append(f"  chosen: {best['pareto']['why']}")
    for key, value in best["params"].items():
        lines.append(f"  {key} = {_fmt(value)}")
    folds = len(best.get("fold_scores") or [])
    std = best.get("cv_std")
    lines.append(
        f"cross-validation {best['metric']}: {best['cv_mean']:.4f} ± {std or 0:.4f} "
        f"over {folds} folds"
    )
    for name, value in best["metrics"].items():
        if name.startswith("val_") and not name.endswith("_std") and name != best["metric"]:
            spread = best["metrics"].get(f"{name}_std")
            lines.append(f"  {name}: {value:.4f} ± {spread or 0:.4f}")
    return lines


TEST_LINE_METRICS = {
    "classification": (
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "roc_auc",
        "log_loss",
    ),
    "regression": ("rmse", "mae", "r2"),
}


def export_lines(report: dict, best_dir, export_seconds: float) -> list[str]:
    """The exported model's test metrics, where it and its report are, and the warnings."""
    if report.get("engine") == "lightning":
        return lightning_export_lines(report, best_dir, export_seconds)
    test = report["test"]
    shown = [
        f"{name} {test[name]:.4f}"
        for name in TEST_LINE_METRICS[report["task"]]
        if test.get(name) is not None
    ]
    model = report["model"]
    lines = [
        f"test ({test['rows']} held-out rows, {model['strategy']} model): " + ", ".join(shown),
        *baseline_lines(report),
        *calibration_lines(report),
        f"exported model: {best_dir} (ONNX check "
        f"{'passed' if report['onnx_check']['passed'] else 'FAILED'}, "
        f"{export_seconds:.1f}s); predict with: hpo predict {best_dir} INPUT --output OUT",
        f"report: {best_dir / BestFiles.REPORT_HTML}",
    ]
    lines += [f"  warning: {w['message']}" for w in report["warnings"]]
    return lines


def baseline_lines(report: dict) -> list[str]:
    """One line per baseline: its test metrics and fit time, and what it beats the tuned
    model on."""
    found = report.get("baselines")
    if not found:
        return []
    tuned, *baselines = found["rows"]
    names = [n for n in TEST_LINE_METRICS[report["task"]] if n in found["metrics"]]
    lines = []
    for row in baselines:
        shown = ", ".join(
            f"{n} {row['test'][n]:.4f}" for n in names if row["test"].get(n) is not None
        )
        verdict = f"; BEATS the tuned model on {', '.join(row['wins'])}" if row["wins"] else ""
        lines.append(
            f"  baseline {row['model']} (same split, fit {row['fit_seconds']:.2f}s): "
            f"{shown}{verdict}"
        )
    return lines


def calibration_lines(report: dict) -> list[str]:
    found = report.get("calibration")
    if not found or not found.get("test"):
        return []
    test = found["test"]
    return [
        f"  calibration: temperature {found['temperature']:.3g} fitted out-of-fold; test "
        f"log loss {test['log_loss_before']:.4f} -> {test['log_loss_after']:.4f}, ECE "
        f"{test['ece_before']:.4f} -> {test['ece_after']:.4f}"
    ]


def lightning_export_lines(report: dict, best_dir, export_seconds: float) -> list[str]:
    test = report["test"]
    shown = [f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float)]
    onnx = report["onnx"]
    onnx_text = (
        ("ONNX check passed" if onnx["passed"] else "ONNX check FAILED")
        if onnx["exported"]
        else "no ONNX: to_onnx failed, see the report"
    )
    scratch = (report.get("from_scratch") or {}).get("test") or {}
    lines = [
        f"test ({test.get('rows')} held-out rows, refit model): " + ", ".join(shown),
        *(
            [
                "from scratch (same config, random weights): "
                + ", ".join(f"{k} {v:.4f}" for k, v in scratch.items() if isinstance(v, float))
            ]
            if scratch
            else []
        ),  # fmt: skip
        f"exported model: {best_dir} (model.ckpt, {onnx_text}, {export_seconds:.1f}s); "
        f"predict with: hpo predict {best_dir} {'FILE ' if report.get('predict_input') else ''}"
        "--output OUT",
        f"report: {best_dir / BestFiles.REPORT_HTML}",
    ]
    return lines + [f"  warning: {w['message']}" for w in report["warnings"]]


def print_summary(result: SweepResult, cfg, stream=None, exported=None) -> None:
    """Print the sweep's summary, then the export's (``exported``: an ExportResult), to
    ``stream`` (default: the current sys.stdout, looked up at call time)."""
    lines = summary_lines(result, cfg)
    if exported is not None:
        lines += export_lines(exported.report, exported.best_dir, exported.export_seconds)
    print("\n".join(lines), file=stream or sys.stdout, flush=True)
