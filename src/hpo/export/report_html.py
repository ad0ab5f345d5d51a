"""report.html: one self-contained page (plots embedded as PNG data URIs, no external
files or scripts); the plots are also written to best/plots/."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from hpo.export import plots
from hpo.export.html_parts import fmt, table
from hpo.export.report import PLOTS_DIR
from hpo.export.report_baselines import baselines_section, calibration_section, reliability_diagram
from hpo.export.report_pareto import FRONT_CAPTION, front_figure, pareto_section
from hpo.export.report_sections import data_quality_section, target_transform_paragraph

__all__ = ["fmt", "table", "write_html"]

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;
padding:.25em .6em;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{
text-align:left}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em;
margin:.4em 0}.ok{color:#1a7f37}.bad{color:#b42318}figure{margin:1em 0}figcaption{
color:#555;font-size:.9em}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}
.muted{color:#666;font-size:.9em}
"""


def _figure_html(fig, name: str, caption: str, plots_dir: Path) -> str:
    if fig is None:
        return ""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = buffer.getvalue()
    (plots_dir / f"{name}.png").write_bytes(data)
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _metrics_section(report: dict[str, Any]) -> str:
    over = report["overfitting"]
    rows = [[name, v["train"], v["cv"], v["test"]] for name, v in over["table"].items()]
    test = report["test"]
    extra = ""
    if report["task"] == "classification":
        extra = table(
            ["test", "value"],
            [["ROC-AUC (one-vs-rest, macro)", test.get("roc_auc")], ["log loss", test["log_loss"]]],
        )
    optimism = (
        f"<p>The sweep picked the trial with the best CV <code>{escape(over['metric'])}</code>: "
        f"{fmt(over['cv'])} ± {fmt(over['cv_std'])}. On the untouched test split it scores "
        f"{fmt(over['test'])} ({escape(over['test_metric'])}); optimism of picking the best "
        f"of {report['sweep']['trials']} trials: <b>{fmt(over['optimism'])}</b> "
        f"<span class=muted>({escape(over['optimism_means'])})</span>.</p>"
    )
    return (
        "<h2>Metrics</h2>"
        f"<p class=muted>train: the exported model on the {fmt(report['train']['rows'])} "
        f"non-test rows; CV: the best trial's fold mean at epoch "
        f"{report['cross_validation']['epoch']}; test: the {fmt(test['rows'])} held-out rows "
        "that nothing was fit on.</p>"
        + table(["metric", "train", "CV", "test"], rows)
        + extra
        + optimism
    )


def _per_class(report: dict[str, Any]) -> str:
    per_class = report["test"].get("per_class")
    if not per_class:
        return ""
    rows = [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in per_class.items()]
    return "<h3>Per class (test)</h3>" + table(
        ["class", "precision", "recall", "F1", "support"], rows
    )


def _model_section(report: dict[str, Any]) -> str:
    model, onnx, pre = report["model"], report["onnx_check"], report["preprocessing_check"]
    replay = model.get("replay") or {}

    def verdict(ok: bool) -> str:
        return "<span class=ok>passed</span>" if ok else "<span class=bad>FAILED</span>"

    return (
        "<h2>The exported model</h2>"
        f"<p>Strategy <b>{escape(model['strategy'])}</b>: {escape(model['how'])}. "
        f"Replaying the best trial gave CV {escape(report['cross_validation']['metric'])} "
        f"{fmt(replay.get('cv_mean'))} (the sweep recorded {fmt(replay.get('sweep_cv_mean'))}).</p>"
        f"<p>ONNX check on the {onnx['rows']} test rows: {verdict(onnx['passed'])}, max "
        f"|onnx − torch| = {fmt(onnx['max_abs_diff'])} ({escape(onnx['tolerance'])}; "
        f"{escape(onnx['runtime'])}). Preprocessing check (exported JSON vs scikit-learn on "
        f"the training rows): {verdict(pre['passed'])}, max difference "
        f"{fmt(pre['max_abs_diff'])}. Export took {fmt(report['export_seconds'])} s.</p>"
        + target_transform_paragraph(report)
        + table(["file", "bytes"], [[k, v] for k, v in report["artifacts"].items()])
    )


def _inference_section(report: dict[str, Any]) -> str:
    inf = report["inference"]
    rows = [
        [
            name,
            inf["one_row_latency"][name]["p50_ms"],
            inf["one_row_latency"][name]["p95_ms"],
            inf["rows_per_s_batch_1024"][name],
        ]
        for name in ("end_to_end", "onnx_model", "torch_baseline")
    ]
    return (
        "<h2>Inference on this machine</h2>"
        f"<p class=muted>{escape(inf['machine'])}. end_to_end: raw rows → preprocessing → "
        "onnxruntime → labels; onnx_model: the ONNX graph alone; torch_baseline: the same "
        "model in eager torch (measured in the same run).</p>"
        + table(["path", "1 row p50 ms", "1 row p95 ms", "rows/s at batch 1024"], rows)
        + table(
            ["figure", "value"],
            [
                ["model size (bytes)", inf["model_size_bytes"]],
                [
                    "peak memory of a fresh process predicting 1024 rows (bytes)",
                    inf.get("peak_memory_bytes"),
                ],
                [
                    "loads without unpickling (checked in that process)",
                    inf.get("loads_without_unpickling"),
                ],
            ],
        )
    )


def _sweep_section(report: dict[str, Any]) -> str:
    s = report["sweep"]
    sched = ", ".join(f"{k}={v}" for k, v in s["scheduler"].items())
    rows = [
        ["trials", s["trials"]],
        ["completed", s["completed"]],
        ["stopped by the scheduler", s["stopped_by_scheduler"]],
        ["failed", s["failed"]],
        ["epochs spent (of trials × max_epochs)", f"{s['epochs_spent']} of {s['epochs_budget']}"],
        ["fold-epochs trained", s["fold_epochs_spent"]],
        ["wall time (s)", s["wall_s"]],
        ["trial compute time (s, summed)", s["trial_compute_s"]],
        ["searcher", f"{s['searcher']['name']} (bridge: {s['searcher']['bridge']})"],
        ["scheduler", sched],
        ["metric", f"{s['metric']} ({s['mode']})"],
    ]
    return "<h2>The sweep</h2>" + table(["", "value"], rows)


def write_html(run, report: dict[str, Any], extra: dict[str, Any], path: Path) -> Path:
    """Draw the plots, save them under best/plots/, and write the page."""
    plots_dir = path.parent / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    model = report["model"]
    replay = model.get("replay") or {}
    cv_metric = report["cross_validation"]["metric"]
    if report["task"] == "classification":
        outcome = plots.confusion(report["test"]["confusion_matrix"], report["classes"])
        outcome_caption = "Confusion matrix on the test split."
    else:
        outcome = plots.predicted_vs_actual(run.test_predictions)
        outcome_caption = "Predicted vs actual on the test split."
    imp = report["hyperparameter_importance"]
    perm = report["permutation_importance"]
    figures = [
        (
            plots.learning_curves(
                replay.get("histories"),
                model.get("history"),
                cv_metric,
                replay.get("fold_best_epochs"),
            ),
            "learning_curves",
            "Learning curves of the best trial, replayed: train (dashed) and validation "
            "(solid) loss per fold, dots at each fold's early-stopping epoch"
            + ("; black: the refit's training loss." if model.get("history") else "."),
        ),
        (outcome, "test_outcome", outcome_caption),
        (
            reliability_diagram(report.get("calibration")),
            "reliability",
            "Reliability diagram on the test split: accuracy against the top-class "
            "probability, before and after temperature scaling (fitted out-of-fold).",
        ),
        (
            plots.permutation_importance(perm),
            "permutation_importance",
            f"Permutation importance on the test split ({perm.get('repeats')} shuffles per "
            "column), raw column names.",
        ),
        (
            plots.sweep_history(extra["history"], cv_metric),
            "sweep_history",
            "Best value so far against epochs spent.",
        ),
        (
            plots.epochs_per_trial(extra["trials"], report["sweep"]["scheduler"]),
            "epochs_per_trial",
            "Epochs each trial got before it completed or the scheduler stopped it.",
        ),
        (
            plots.param_importances(
                imp["importances"], imp["common_budget_epochs"], imp.get("trials")
            ),
            "param_importances",
            imp["method"] + "." + (f" Caveat: it {imp['caveat']}." if imp.get("caveat") else ""),
        ),
        (
            plots.parallel_coordinates(extra["study"]),
            "parallel_coordinates",
            f"Parallel coordinates: every trial's hyperparameters and its {cv_metric} at "
            f"epoch {imp['common_budget_epochs']}.",
        ),
        (
            plots.slices(extra["study"]),
            "slices",
            f"Slice plot: {cv_metric} at epoch {imp['common_budget_epochs']} against each "
            "hyperparameter.",
        ),
    ]
    figure_html = "".join(_figure_html(f, n, c, plots_dir) for f, n, c in figures)
    front_html = pareto_section(
        report,
        _figure_html(front_figure(run.trials, run.cfg), "pareto_front", FRONT_CAPTION, plots_dir)
        if report.get("pareto") else "",
    )  # fmt: skip
    warnings = report["warnings"]
    warning_html = (
        "".join(
            f"<div class=warn><b>{escape(w['kind'])}</b>: {escape(w['message'])}</div>"
            for w in warnings
        )
        or "<p class=ok>No pitfall detected.</p>"
    )
    best = report["best_trial"]
    cv = report["cross_validation"]
    params = table(["hyperparameter", "value"], [[k, v] for k, v in best["params"].items()])
    folds = table(
        ["fold", cv["metric"], "best epoch"],
        [
            [i, s, e]
            for i, (s, e) in enumerate(zip(cv["per_fold"] or [], cv["fold_best_epochs"] or []))
        ],
    )
    data = report["data"]
    title = Path(data["file"]).name if data.get("file") else data["name"]
    source = f"data file {data['file']} · " if data.get("file") else f"built-in {data['name']} · "
    note = imp.get("note")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>hpo report: {escape(title)}</title><style>{STYLE}</style></head><body>
<h1>hpo report: {escape(title)} ({escape(report["task"])})</h1>
<p class=muted>{escape(source)}target <code>{escape(data["target"])}</code> ·
{escape(report["run_dir"])} · {data["rows_non_test"]} rows for
{report["sweep"]["cv_folds"]}-fold CV, {data["rows_test"]} held out for
the test · best trial {escape(best["trial_id"])} at epoch {best["epoch"]}</p>
<h2>Warnings</h2>{warning_html}
{_metrics_section(report)}{baselines_section(report)}{calibration_section(report)}
{_per_class(report)}
{front_html}
{data_quality_section(report)}
<h2>Best hyperparameters</h2>{params}
<h3>Cross-validation at the best epoch</h3>
<p>{escape(cv["metric"])}: {fmt(cv["mean"])} ± {fmt(cv["std"])}</p>{folds}
{_model_section(report)}
<h2>Plots</h2>{"<p class=muted>" + escape(note) + "</p>" if note else ""}{figure_html}
{_inference_section(report)}
{_sweep_section(report)}
<p class=muted>Rebuild this page with <code>hpo report {escape(report["run_dir"])}</code>;
predict with <code>hpo predict {escape(report["run_dir"])}/best INPUT --output OUT</code>.</p>
</body></html>
"""
    path.write_text(page)
    return path
