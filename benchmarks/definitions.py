"""Benchmarks are data (as in Syne Tune): one BenchmarkDefinition per task.

A task is the Hydra overrides that define it, what it optimizes, its budget (trial-epochs
and wall time per run) and its number of workers. Adding a task is one entry in
BENCHMARKS; ``python -m benchmarks.compare`` runs every method on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from omegaconf import DictConfig

from benchmarks.model_task import ModelObjective
from benchmarks.synthetic import METRIC as SYNTHETIC_METRIC
from benchmarks.synthetic import Hartmann6Objective


@dataclass(frozen=True)
class BenchmarkDefinition:
    """One task of the comparison.

    Attributes:
        name: the task's name in every result row.
        overrides: Hydra overrides that define the task (data, model, space, folds).
        metric, mode: the cross-validation score the methods optimize.
        max_epochs: the top fidelity: epochs of a trial nobody stops.
        epoch_budget: trial-epochs every method may spend in one run (the equal budget).
        time_budget_s: wall seconds a run may take; a safety cap, not the usual limit.
        n_workers: trials at a time.
        objective: what a trial trains: ``model`` (hpo's k-fold trial) or ``hartmann6``.
        test_metric, test_mode: the score of the chosen configuration on held-out data
            (for the synthetic task, its exact regret).
    """

    name: str
    overrides: tuple[str, ...]
    metric: str
    mode: str
    max_epochs: int
    epoch_budget: int
    time_budget_s: float | None
    n_workers: int
    objective: str = "model"
    test_metric: str = "test_loss"
    test_mode: str = "min"

    def hydra_overrides(self, seed: int) -> list[str]:
        """The overrides of one run of this task (a method adds its own)."""
        return [
            *self.overrides,
            f"metric={self.metric}",
            f"mode={self.mode}",
            f"trainer.max_epochs={self.max_epochs}",
            f"budget.max_concurrent_trials={self.n_workers}",
            f"seed={seed}",
        ]

    def make_objective(self, cfg: DictConfig):
        if self.objective == "hartmann6":
            return Hartmann6Objective(cfg.trainer.max_epochs, noise_seed=int(cfg.seed))
        return ModelObjective(cfg)


# One trial at a time everywhere: on a shared 2-core machine a second worker buys little
# speed and a second Ray actor per run costs a second import of torch and Lightning; with
# one worker a run is repeatable for its seed, and the native Optuna baseline (sequential)
# compares like for like. Set n_workers per task to measure parallel runs.
WORKERS = 1

# The real tasks share hpo's defaults (MLP, its default search space, TPE with 8 startup
# trials, ASHA with grace period 2 and reduction factor 3) but train small: 3 folds,
# 9 epochs at most, early stopping after 3 epochs without progress.
SMALL_MODEL = ("cv.folds=3", "trainer.patience=3")
MODEL_BUDGET = {
    "max_epochs": 9,
    "epoch_budget": 90,  # 10 full-length trials
    "time_budget_s": 300.0,
    "n_workers": WORKERS,
}


def model_task(data: str, metric: str, test_metric: str, test_mode: str) -> BenchmarkDefinition:
    """A built-in dataset under hpo's defaults, trained small."""
    return BenchmarkDefinition(
        name=data,
        overrides=(f"data={data}", *SMALL_MODEL),
        metric=metric,
        mode="min",
        test_metric=test_metric,
        test_mode=test_mode,
        **MODEL_BUDGET,
    )


BENCHMARKS: dict[str, BenchmarkDefinition] = {
    definition.name: definition
    for definition in (
        BenchmarkDefinition(
            name="hartmann6",
            # Rungs at 1, 3 and 9 epochs; 360 trial-epochs = 40 full-fidelity trials.
            overrides=("scheduler.grace_period=1",),
            metric=SYNTHETIC_METRIC,
            mode="min",
            max_epochs=9,
            epoch_budget=360,
            time_budget_s=300.0,
            n_workers=WORKERS,
            objective="hartmann6",
            test_metric="test_regret",
        ),
        model_task("digits", "val_loss", "test_accuracy", "max"),
        model_task("breast_cancer", "val_loss", "test_accuracy", "max"),
        model_task("wine", "val_loss", "test_accuracy", "max"),
        model_task("diabetes", "val_rmse", "test_rmse", "min"),
    )
}

FULL_SEEDS = (0, 1, 2, 3, 4)

# `--quick`: the synthetic task and the two cheapest real ones (a classification, a
# regression) on fewer seeds; the budgets per run are the full ones.
QUICK_TASKS = ("hartmann6", "wine", "diabetes")
QUICK_SEEDS = (0, 1, 2)


def shrink(definition: BenchmarkDefinition, factor: float) -> BenchmarkDefinition:
    """The same task on a smaller epoch budget (for tests and smoke runs)."""
    return replace(definition, epoch_budget=max(1, int(definition.epoch_budget * factor)))
