"""The report's Pareto front (multi-objective sweeps): report.json's ``pareto``,
best/pareto.csv and the front's plot and table in report.html (hpo.export.pareto)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from hpo.config.objectives import is_multi_objective
from hpo.export.html_parts import table
from hpo.export.pareto import PARETO_FILE, front_table, pareto_front
from hpo.space import build_search_space


def pareto_report(trials: pd.DataFrame, cfg: Any) -> dict[str, Any] | None:
    """report.json's ``pareto``: the choice (rule, chosen trial, why) and the front's
    rows; None for a single-objective sweep."""
    if not is_multi_objective(cfg):
        return None
    space, _ = build_search_space(cfg.search_space)
    front = front_table(trials, cfg, list(space))
    _, _, choice = pareto_front(trials, cfg)
    return {**choice, "file": PARETO_FILE, "front": front.to_dict(orient="records")}


def write_front(trials: pd.DataFrame, cfg: Any, best_dir: Path) -> None:
    """best/pareto.csv, for a multi-objective sweep."""
    if is_multi_objective(cfg):
        space, _ = build_search_space(cfg.search_space)
        front_table(trials, cfg, list(space)).to_csv(best_dir / PARETO_FILE, index=False)


FRONT_CAPTION = (
    "Every trial on the first two objectives: the Pareto front joined, the exported point ringed."
)


def front_figure(trials: pd.DataFrame, cfg: Any):
    """Every trial on the first two objectives; the front joined, the chosen point ringed."""
    import matplotlib.pyplot as plt

    points, front, choice = pareto_front(trials, cfg)
    (x, x_mode), (y, y_mode) = [(o["metric"], o["mode"]) for o in choice["objectives"][:2]]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(points[x], points[y], s=18, color="lightgray", label="dominated trials")
    line = front.sort_values(x)
    ax.plot(line[x], line[y], "o-", color="tab:blue", ms=5, label="front")
    chosen = front[front["chosen"]]
    ax.scatter(chosen[x], chosen[y], s=160, facecolors="none", edgecolors="tab:red", lw=2,
               label=f"exported ({choice['rule']})")  # fmt: skip
    ax.set_xlabel(f"{x} ({x_mode})")
    ax.set_ylabel(f"{y} ({y_mode})")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def pareto_section(report: dict[str, Any], figure_html: str) -> str:
    """The report.html section (empty for a single-objective sweep)."""
    pareto = report.get("pareto")
    if not pareto:
        return ""
    names = [o["metric"] for o in pareto["objectives"]]
    rows = [
        [r["trial_id"] + (" (exported)" if r["chosen"] else ""), r["epoch"], *(r[n] for n in names)]
        for r in pareto["front"]
    ]
    goals = ", ".join(f"{o['metric']} ({o['mode']})" for o in pareto["objectives"])
    return (
        f"<h2>Pareto front</h2><p>Objectives: {escape(goals)}. Exported: "
        f"{escape(pareto['why'])}. The sweep's <code>export.pareto_pick=knee|"
        f"first_objective|weights</code> chooses the point; the front is in "
        f"<code>best/{escape(pareto['file'])}</code>.</p>{figure_html}"
        + table(["trial", "epoch", *names], rows)
    )
