"""The median stopping rule (Golovin et al. 2017, Google Vizier), with hpo's own state.

A trial is stopped at epoch ``t >= grace_period`` when its best value so far is worse
than the median, over the other trials that have reached epoch ``t``, of their running
means up to ``t`` (once at least ``min_samples`` such trials exist). Unlike Ray's
``MedianStoppingRule``, which compares against completed trials only, running trials
count too, so it judges from the first trials on in an asynchronous sweep. The learning
curves are its state: ``state_dict()`` / ``load_state_dict()`` travel with the run
(hpo.sweep.asha.SchedulerState), so ``hpo resume`` keeps them.
"""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from hpo.sweep.asha import first_results


class MedianStopping(FIFOScheduler):
    """Median stopping over the trials' ``epoch``.

    Args:
        metric, mode: the value to judge and which way is better.
        grace_period: epochs every trial gets before it can be stopped.
        min_samples: how many other trials must have reached an epoch to judge there.
    """

    def __init__(self, metric: str, mode: str, grace_period: int = 1, min_samples: int = 3):
        super().__init__()
        self.metric_name, self.mode = metric, mode
        self.grace_period, self.min_samples = grace_period, min_samples
        self.curves: dict[str, dict[int, float]] = {}  # trial -> epoch -> reward (higher better)
        self.stopped: dict[str, int] = {}  # trial -> the epoch it was stopped at

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # set in the constructor, from the same config keys

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch, value = result.get("epoch"), result.get(self.metric_name)
        if epoch is None or value is None or not math.isfinite(value):
            return TrialScheduler.CONTINUE
        epoch = int(epoch)
        curve = self.curves.setdefault(trial.trial_id, {})
        curve[epoch] = -float(value) if self.mode == "min" else float(value)
        if epoch < self.grace_period:
            return TrialScheduler.CONTINUE
        means = [
            statistics.fmean(v for e, v in other.items() if e <= epoch)
            for trial_id, other in self.curves.items()
            if trial_id != trial.trial_id and max(other) >= epoch
        ]
        if len(means) < self.min_samples:
            return TrialScheduler.CONTINUE
        best = max(v for e, v in curve.items() if e <= epoch)
        if best < statistics.median(means):
            self.stopped[trial.trial_id] = epoch
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def replay(self, rows: list[dict]) -> None:
        """Rebuild the curves from trials.jsonl's rows (each (trial, epoch) once)."""
        for row in first_results(rows):
            self.on_trial_result(None, SimpleNamespace(trial_id=row["trial_id"]), row)

    def state_dict(self) -> dict[str, Any]:
        return {
            "curves": {t: dict(c) for t, c in self.curves.items()},
            "stopped": dict(self.stopped),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curves.update({t: dict(c) for t, c in state["curves"].items()})
        self.stopped.update(state["stopped"])

    def debug_string(self) -> str:
        return f"MedianStopping: {len(self.stopped)} stopped"
