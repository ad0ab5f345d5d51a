"""Runs one method on one task through Ray Tune, on an epoch budget.

Through the same Sweep as ``hpo sweep`` and ``hpo resume`` (hpo.sweep.sweep.Sweep, its
searcher and scheduler from hpo's factories, so a method's overrides such as
``searcher=random``, ``scheduler=fifo``, ``searcher.bridge=stock`` mean here what they mean
to ``hpo sweep``), with a stopper that ends the run when its trial-epoch budget is spent
(methods are compared on equal budgets) and logs the wall time of every report as it
reaches the driver (for anytime curves).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from ray import tune
from ray.tune import Stopper
from ray.tune.result import TRAINING_ITERATION

from benchmarks.anytime import AnytimeLog
from hpo.sweep.optuna_bridge import JOURNAL_FILE
from hpo.sweep.sweep import Sweep


class EpochBudgetStopper(Stopper):
    """Logs every result on the driver and stops the experiment once the budget is spent."""

    def __init__(self, log: AnytimeLog) -> None:
        self.log = log
        self._last_iteration: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        # When a function trainable returns, Tune passes its last result once more (marked
        # done); it is the same epoch, not a new one.
        iteration = result.get(TRAINING_ITERATION)
        if iteration is None or iteration != self._last_iteration.get(trial_id):
            self._last_iteration[trial_id] = iteration
            self.log.add(trial_id, result.get("config", {}), result)
        return self.log.exhausted()

    def stop_all(self) -> bool:
        return self.log.exhausted()


def run_with_ray_tune(objective, cfg: DictConfig, log: AnytimeLog, n_workers: int) -> AnytimeLog:
    """Run ``objective``'s trainable with the config's searcher and scheduler until
    ``log`` says the budget is spent. Ray must already be initialized."""
    trainable = tune.with_resources(
        objective.ray_trainable(), {"cpu": float(cfg.resources.cpus_per_trial)}
    )
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as storage:
        sweep = Sweep.from_config(
            cfg,
            objective.space,
            trainable,
            storage,
            Path(storage) / JOURNAL_FILE,
            # An upper bound only: the stopper ends the run when the epochs are spent.
            num_samples=log.epoch_budget,
            concurrent=n_workers,
            stopper=EpochBudgetStopper(log),
        )
        trials = sweep.run()
    log.failed = sum(t.status == "ERROR" for t in trials)
    return log
