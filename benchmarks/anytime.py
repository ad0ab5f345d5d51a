"""The anytime log of one benchmark run: every report in arrival order, with the epochs
spent so far and the wall time, and the run's budget."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hpo.train.trial import FINISHED_KEY


class AnytimeLog:
    """Records reports as they arrive and says when the run's budget is spent.

    One report is one trial-epoch; the epochs spent after a report are the number of
    reports so far, whichever trial they came from.

    Args:
        metric: the reported value to log.
        epoch_budget: trial-epochs the run may spend.
        time_budget_s: wall seconds the run may take (None: no limit).
    """

    def __init__(self, metric: str, epoch_budget: int, time_budget_s: float | None) -> None:
        self.metric = metric
        self.epoch_budget = int(epoch_budget)
        self.time_budget_s = time_budget_s
        self.started = time.monotonic()
        self.rows: list[dict[str, Any]] = []
        self.failed = 0

    @property
    def epochs_spent(self) -> int:
        return len(self.rows)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def exhausted(self) -> bool:
        over_time = self.time_budget_s is not None and self.elapsed() >= self.time_budget_s
        return self.epochs_spent >= self.epoch_budget or over_time

    def add(self, trial_id: Any, params: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        value = report.get(self.metric)
        value = float(value) if isinstance(value, (int, float)) else math.nan
        self.rows.append(
            {
                "cum_epochs": len(self.rows) + 1,
                "wall_s": self.elapsed(),
                "trial_id": str(trial_id),
                "epoch": int(report.get("epoch", 0)),
                "value": value,
                "finished": bool(report.get(FINISHED_KEY, False)),
                "params": dict(params),
                "fold_best_epochs": report.get("fold_best_epochs"),
            }
        )

    def frame(self) -> pd.DataFrame:
        """The reports within the epoch budget (trials still running when it was spent
        may have reported a few more)."""
        return pd.DataFrame(self.rows[: self.epoch_budget])


def best_so_far(values: pd.Series, mode: str) -> pd.Series:
    """The running best of ``values`` (NaN until the first finite one)."""
    finite = values.where(values.map(lambda v: math.isfinite(v)))
    # cummin/cummax leave NaN where the value is NaN: carry the best across failed reports.
    return (finite.cummin() if mode == "min" else finite.cummax()).ffill()


def chosen_row(frame: pd.DataFrame, mode: str) -> pd.Series | None:
    """The report a run would pick: the best value, the earliest on ties."""
    finite = frame[frame["value"].map(math.isfinite)]
    if finite.empty:
        return None
    return finite.loc[finite["value"].idxmin() if mode == "min" else finite["value"].idxmax()]


def incumbent_scores(frame: pd.DataFrame, mode: str, score) -> list[float]:
    """``score(params)`` of the configuration that is the best so far after each report
    (for the synthetic task: the exact regret of what the run would pick then)."""
    scores, best_value, best_score = [], None, math.nan
    for value, params in zip(frame["value"], frame["params"]):
        improves = best_value is None or (
            value < best_value if mode == "min" else value > best_value
        )
        if math.isfinite(value) and improves:
            best_value, best_score = value, float(score(params))
        scores.append(best_score)
    return scores
