"""Writes a comparison's results: Parquet files, the Markdown summary and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmarks import aggregate
from benchmarks.methods import DEFAULT, METHODS, RANDOM_BASELINE
from benchmarks.plots import plot_anytime

RUNS_FILE = "runs.parquet"
CURVES_FILE = "curves.parquet"
SUMMARY_FILE = "summary.md"
PLOT_FILE = "anytime.png"
META_FILE = "meta.json"
# The default is compared head to head with these, paired by task and seed.
RIVALS = ("asha_tpe_stock", "asha_random", RANDOM_BASELINE)

EXPLAIN_TASK_TABLE = (
    "CV score: the best fold-mean validation score a run saw within its budget. Test score: "
    "that configuration retrained on all non-test rows for its folds' median early-stopping "
    "epoch, scored on the held-out test rows (hartmann6: its exact regret). Time-to-target: "
    "trial-epochs until the run's best CV score reached the final best of FIFO + random "
    "search on the same seed, as a fraction of the budget ('never': not within the budget; "
    "in brackets: runs that got there). Rank: among the methods on the same seed (1 = best). "
    "Wall s: seconds until the budget was spent, Ray start-up included.\n"
)


def budgets_table(runs: pd.DataFrame) -> pd.DataFrame:
    """What each task optimizes and its budget, from the run rows."""
    first = runs.groupby("task", sort=False).first().reset_index()
    return pd.DataFrame(
        {
            "task": first["task"],
            "CV score": first["metric"] + " (" + first["mode"] + ")",
            "test score": first["test_metric"] + " (" + first["test_mode"] + ")",
            "max epochs": first["max_epochs"],
            "epoch budget": first["epoch_budget"],
            "workers": first["n_workers"],
            "seeds": runs.groupby("task", sort=False)["seed"].nunique().to_numpy(),
        }
    )


def summary_markdown(runs: pd.DataFrame, header: str) -> str:
    labels = {name: m.label for name, m in METHODS.items()}
    present = set(runs["method"])
    rivals = [m for m in RIVALS if m in present]
    versus = (
        aggregate.markdown(aggregate.head_to_head(runs, DEFAULT, rivals))
        if DEFAULT in present and rivals
        else "(needs the default and one of its rivals)"
    )
    parts = [
        header,
        "## Tasks and budgets\n",
        aggregate.markdown(budgets_table(runs)),
        "\n## Mean rank (1 = best; by final CV score per task, then CV and test overall)\n",
        aggregate.markdown(aggregate.rank_table(runs, labels)),
        "\n## The default (ASHA + TPE, fidelity bridge) against its rivals, paired by seed\n",
        "Gain: how much better the default's final CV score / test score is, in the "
        "metric's units (positive: the default wins).\n",
        versus,
        "\n## Per task: median [IQR] over seeds\n",
        EXPLAIN_TASK_TABLE,
        aggregate.markdown(aggregate.task_table(runs, labels)),
        f"\n![anytime curves]({PLOT_FILE})\n",
    ]
    return "\n".join(parts) + "\n"


def write_results(runs: pd.DataFrame, curves: pd.DataFrame, out: Path, header: str) -> None:
    """``runs.parquet``, ``curves.parquet``, ``summary.md`` and ``anytime.png`` in ``out``
    (``header`` opens the summary and is kept in ``meta.json`` for re-rendering)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(out / RUNS_FILE, index=False)
    curves.to_parquet(out / CURVES_FILE, index=False)
    (out / META_FILE).write_text(json.dumps({"header": header}, indent=2) + "\n")
    render(out)


def render(out: Path) -> None:
    """(Re)write ``summary.md`` and ``anytime.png`` from the results in ``out``."""
    out = Path(out)
    runs = pd.read_parquet(out / RUNS_FILE)
    curves = pd.read_parquet(out / CURVES_FILE)
    header = json.loads((out / META_FILE).read_text())["header"]
    (out / SUMMARY_FILE).write_text(summary_markdown(runs, header))
    labels = {name: m.label for name, m in METHODS.items()}
    plot_anytime(curves, out / PLOT_FILE, labels, DEFAULT)
