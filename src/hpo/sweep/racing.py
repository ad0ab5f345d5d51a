"""Fold racing: the k folds as a second fidelity (``scheduler.racing=true``).

Every trial is scored on the same k folds, so two trials' per-fold scores at an epoch
are paired samples. After each epoch (from ``scheduler.racing_min_epoch`` on) a trial is
compared with the incumbent at that same epoch (the trial with the best fold mean there
among those that reached it): a one-sided paired t-test on the k fold differences. When
the trial is worse with p < ``scheduler.racing_alpha`` it stops, whatever the wrapped
scheduler (ASHA, median, FIFO, ...) would have said; otherwise the wrapped scheduler
decides. A trial stopped this way is recorded as ``stopped`` and reaches the searcher as
any stopped trial does.

What it does not do: skip folds. hpo trains a trial's folds in lockstep (one batched
model), so the saving is in epochs: a clearly worse trial stops before its scheduler
would have stopped it. Folds' scores as reported (``fold_<metric>``); the incumbent's
vector is kept per epoch, as hpo's state (``state_dict``), so ``hpo resume`` keeps it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from scipy import stats


def paired_worse_p(trial: list[float], incumbent: list[float], mode: str) -> float:
    """One-sided p-value of "``trial`` is worse than ``incumbent``" over paired folds
    (1.0 when it cannot be told: fewer than 2 folds, or no spread in the differences)."""
    diffs = np.asarray(trial, dtype=float) - np.asarray(incumbent, dtype=float)
    if mode == "max":
        diffs = -diffs  # positive: worse
    if len(diffs) < 2 or not np.all(np.isfinite(diffs)):
        return 1.0
    if np.allclose(diffs, diffs[0]):
        return 0.0 if diffs[0] > 0 else 1.0  # the same gap on every fold
    result = stats.ttest_1samp(diffs, 0.0, alternative="greater")
    return float(result.pvalue)


class FoldRacing(FIFOScheduler):
    """Wraps a scheduler with the fold race (see the module docstring).

    Args:
        inner: the scheduler that decides when the race does not stop a trial.
        metric, mode: the metric whose per-fold values (``fold_<metric>``) are compared.
        alpha: the paired test's level.
        min_epoch: the first epoch at which a trial can be raced out.
    """

    def __init__(self, inner, metric: str, mode: str, alpha: float = 0.05, min_epoch: int = 1):
        super().__init__()
        self.inner, self.metric_name, self.mode = inner, metric, mode
        self.alpha, self.min_epoch = alpha, min_epoch
        self.incumbents: dict[int, tuple[str, float, list[float]]] = {}  # epoch -> best there
        self.raced_out: dict[str, int] = {}  # trial -> the epoch it was stopped at

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        return self.inner.choose_trial_to_run(tune_controller)

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = self.inner.on_trial_result(tune_controller, trial, result)
        epoch, value = result.get("epoch"), result.get(self.metric_name)
        folds = result.get(f"fold_{self.metric_name}")
        if epoch is None or value is None or not folds or not math.isfinite(value):
            return action
        epoch, folds = int(epoch), [float(v) for v in folds]
        incumbent = self.incumbents.get(epoch)
        if incumbent is None or self._better(value, incumbent[1]):
            self.incumbents[epoch] = (trial.trial_id, float(value), folds)
            return action
        if action == TrialScheduler.STOP or epoch < self.min_epoch:
            return action
        if incumbent[0] != trial.trial_id and len(folds) == len(incumbent[2]):
            if paired_worse_p(folds, incumbent[2], self.mode) < self.alpha:
                self.raced_out[trial.trial_id] = epoch
                return TrialScheduler.STOP
        return action

    def state_dict(self) -> dict[str, Any]:
        inner = self.inner.state_dict() if hasattr(self.inner, "state_dict") else None
        return {
            "inner": inner,
            "incumbents": {e: (t, v, list(f)) for e, (t, v, f) in self.incumbents.items()},
            "raced_out": dict(self.raced_out),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["inner"] is not None and hasattr(self.inner, "load_state_dict"):
            self.inner.load_state_dict(state["inner"])
        self.incumbents.update(state["incumbents"])
        self.raced_out.update(state["raced_out"])

    def debug_string(self) -> str:
        return f"FoldRacing({self.inner.debug_string()}): {len(self.raced_out)} raced out"
