"""Runs one method on one task through Ray Tune, on an epoch budget.

This is hpo.sweep.runner.build_tuner with two additions that run_sweep has no hook for
yet: a Stopper that ends the run when its trial-epoch budget is spent (so methods are
compared on equal budgets), and the wall time of every report as it reaches the driver
(for anytime curves). The searcher and scheduler come from hpo's own factories, so a
method's overrides (``searcher=random``, ``scheduler=fifo``, ``searcher.bridge=stock``)
mean here what they mean to ``hpo sweep``.
"""

from __future__ import annotations

import tempfile
from typing import Any

from omegaconf import DictConfig
from ray import tune
from ray.tune import Stopper
from ray.tune.result import TRAINING_ITERATION

from benchmarks.anytime import AnytimeLog
from hpo.sweep.runner import make_scheduler, make_searcher, trial_dirname


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
    searcher = make_searcher(cfg, objective.space, n_workers)
    trainable = tune.with_resources(
        objective.ray_trainable(), {"cpu": float(cfg.resources.cpus_per_trial)}
    )
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as storage:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=objective.metric,
                mode=objective.mode,
                search_alg=searcher,
                scheduler=make_scheduler(cfg),
                # An upper bound only: the stopper ends the run when the epochs are spent.
                num_samples=log.epoch_budget,
                max_concurrent_trials=n_workers,
                reuse_actors=True,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=storage,
                verbose=0,
                stop=EpochBudgetStopper(log),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=int(cfg.budget.max_retries)),
            ),
        )
        grid = tuner.fit()
    log.failed = int(grid.num_errors)
    return log
