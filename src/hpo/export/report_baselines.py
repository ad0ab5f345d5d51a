"""Sections of report.html that put the model in perspective: the baselines beside it and
its calibration (reliability diagram, ECE and log loss before and after)."""

from __future__ import annotations

from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hpo.export.html_parts import fmt, table  # noqa: E402


def baselines_section(report: dict[str, Any]) -> str:
    """The tuned model and every baseline, side by side on the same folds and test rows."""
    found = report.get("baselines")
    if not found:
        return ""
    metrics = found["metrics"]
    header = ["model", f"CV {found['cv_metric']}", *[f"test {m}" for m in metrics]]
    header += ["fit time (s)", "beats the tuned model on"]
    rows = [
        [
            row["model"],
            row["cv"],
            *[row["test"].get(m) for m in metrics],
            row["fit_seconds"],
            ", ".join(row["wins"]) or "–",
        ]
        for row in found["rows"]
    ]
    estimators = "; ".join(
        f"{r['model']}: {r['estimator']}" for r in found["rows"] if r.get("estimator")
    )
    return (
        "<h2>Baselines</h2>"
        f"<p class=muted>{escape(found['how'])}. {escape(found['fit_seconds_means'])}. "
        f"{escape(estimators)}.</p>" + table(header, rows)
    )


def calibration_section(report: dict[str, Any]) -> str:
    """Temperature, and log loss / ECE before and after, out-of-fold and on the test."""
    found = report.get("calibration")
    if not found:
        return ""
    rows = []
    for where, key in (("out-of-fold (fitted on)", "fit"), ("test (held out)", "test")):
        part = found.get(key)
        if part:
            rows.append(
                [
                    where,
                    part["rows"],
                    part["log_loss_before"],
                    part["log_loss_after"],
                    part["ece_before"],
                    part["ece_after"],
                ]
            )
    header = ["rows", "count", "log loss before", "log loss after", "ECE before", "ECE after"]
    return (
        "<h2>Calibration</h2>"
        f"<p>Method <b>{escape(found['method'])}</b>, temperature "
        f"<b>{fmt(found['temperature'])}</b>, fitted on {escape(found['fitted_on'])}; then "
        f"mixed with the uniform distribution by {fmt(found.get('uniform_weight'))}, so no "
        f"probability exceeds {fmt(found.get('max_probability'))} (1 − 1/(n+2)). The "
        "exported ONNX graph does both, so `hpo predict` gives these probabilities; the "
        "predicted class does not change.</p>"
        + table(header, rows)
        + "<p class=muted>ECE: expected calibration error over 10 equal-width bins of "
        "the top-class probability.</p>"
    )


def reliability_diagram(calibration: dict[str, Any] | None) -> Figure | None:
    """Accuracy against confidence per bin on the test rows, before and after."""
    test = (calibration or {}).get("test")
    if not test:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfectly calibrated")
    for key, label, style in (
        ("bins_before", f"before (ECE {test['ece_before']:.3f})", "o--"),
        (
            "bins_after",
            f"after T={calibration['temperature']:.3g} (ECE {test['ece_after']:.3f})",
            "s-",
        ),
    ):
        bins = [b for b in test[key] if b["rows"]]
        x, y = [b["confidence"] for b in bins], [b["accuracy"] for b in bins]
        (line,) = ax.plot(x, y, style, label=label)
        for b, xi, yi in zip(bins, x, y):  # how many rows each point rests on
            ax.annotate(
                str(b["rows"]),
                (xi, yi),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=line.get_color(),
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("top-class probability (bin mean)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(f"Reliability on the {test['rows']} test rows")
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig
