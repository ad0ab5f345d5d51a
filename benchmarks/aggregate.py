"""From the tagged results to the comparison: time-to-target, ranks, and the tables of
medians with their interquartile ranges over seeds. Pure pandas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RUN_KEYS = ["task", "method", "seed"]


def _better_or_equal(value: float, target: float, mode: str) -> bool:
    return value <= target if mode == "min" else value >= target


def add_time_to_target(runs: pd.DataFrame, curves: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Add ``ttt_ratio``: the trial-epochs a run needed to reach the final best CV score of
    the ``baseline`` run (full-budget random search) on the same task and seed, divided by
    the epoch budget. Below 1: it got there sooner; inf: it never got there."""
    runs = runs.copy()
    targets = runs[runs["method"] == baseline].set_index(["task", "seed"])["final_cv"]
    by_run = {key: frame for key, frame in curves.groupby(RUN_KEYS, sort=False)}
    ratios = []
    for row in runs.itertuples():
        target = targets.get((row.task, row.seed), math.nan)
        curve = by_run.get((row.task, row.method, row.seed))
        if curve is None or not math.isfinite(target):
            ratios.append(math.nan)
            continue
        hit = curve[[_better_or_equal(v, target, row.mode) for v in curve["best_so_far"]]]
        epochs = float(hit["cum_epochs"].iloc[0]) if not hit.empty else math.inf
        ratios.append(epochs / row.epoch_budget)
    runs["ttt_ratio"] = ratios
    return runs


def add_ranks(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``rank_cv`` and ``rank_test``: each method's rank among the methods on the same
    task and seed (1 = best, ties share the mean rank)."""
    runs = runs.copy()
    for column, mode_column, rank in (
        ("final_cv", "mode", "rank_cv"),
        ("test_score", "test_mode", "rank_test"),
    ):
        ascending = runs[mode_column] == "min"
        signed = runs[column].where(ascending, -runs[column])
        runs[rank] = signed.groupby([runs["task"], runs["seed"]]).rank(method="average")
    return runs


def median_iqr(values: pd.Series) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile, ignoring NaN; inf (never reached) sorts last and
    a quantile that falls on or next to it is inf."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return math.nan, math.nan, math.nan
    finite_max = np.finfo(float).max
    q25, q50, q75 = np.percentile(np.minimum(arr, finite_max), [25, 50, 75])
    q25, q50, q75 = (math.inf if q > finite_max / 2**60 else float(q) for q in (q25, q50, q75))
    return q50, q25, q75


def fmt(value: float, digits: int = 4) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:.{digits}g}"


def fmt_median_iqr(values: pd.Series, digits: int = 4) -> str:
    median, q25, q75 = median_iqr(values)
    if math.isnan(median):
        return "-"
    return f"{fmt(median, digits)} [{fmt(q25, digits)}, {fmt(q75, digits)}]"


def task_table(runs: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """One row per (task, method): medians [IQR] over seeds and mean ranks."""
    rows = []
    for (task, method), group in runs.groupby(["task", "method"], sort=False):
        reached = int(np.isfinite(group["ttt_ratio"]).sum())
        rows.append(
            {
                "task": task,
                "method": labels.get(method, method),
                "CV score": fmt_median_iqr(group["final_cv"]),
                "test score": fmt_median_iqr(group["test_score"]),
                "time-to-target": f"{fmt_median_iqr(group['ttt_ratio'], 2)} ({reached}/{len(group)})",
                "rank CV": f"{group['rank_cv'].mean():.2f}",
                "rank test": f"{group['rank_test'].mean():.2f}",
                "trials": f"{group['trials'].median():.0f}",
                "wall s": fmt(group["wall_s"].median(), 3),
            }
        )
    return pd.DataFrame(rows)


def rank_table(runs: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Mean rank (CV and test) per method on each task and over all tasks."""
    cv = runs.pivot_table(index="method", columns="task", values="rank_cv", aggfunc="mean")
    table = cv.round(2)
    table["all tasks (CV)"] = runs.groupby("method")["rank_cv"].mean().round(2)
    table["all tasks (test)"] = runs.groupby("method")["rank_test"].mean().round(2)
    table = table.sort_values("all tasks (CV)")
    table.index = [labels.get(m, m) for m in table.index]
    return table.reset_index(names="method")


def head_to_head(runs: pd.DataFrame, default: str, others: list[str]) -> pd.DataFrame:
    """The default against each other method, paired by task and seed: seeds where it
    wins, ties and loses, and the median gain (positive: the default is better)."""
    rows = []
    keyed = runs.set_index(["task", "seed", "method"])
    for other in others:
        for task, group in runs[runs["method"] == default].groupby("task", sort=False):
            row = {"task": task, "versus": other}
            for column, mode_column, label in (
                ("final_cv", "mode", "CV"),
                ("test_score", "test_mode", "test"),
            ):
                gains = []
                for seed, mine, mode in zip(group["seed"], group[column], group[mode_column]):
                    if (task, seed, other) in keyed.index:
                        theirs = keyed.loc[(task, seed, other), column]
                        gains.append(theirs - mine if mode == "min" else mine - theirs)
                gains = np.asarray(gains, dtype=float)
                won, lost = int((gains > 0).sum()), int((gains < 0).sum())
                row[f"{label} won-tied-lost"] = f"{won}-{gains.size - won - lost}-{lost}"
                row[f"{label} median gain"] = fmt(float(np.median(gains)), 3) if gains.size else "-"
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub pipe table."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
