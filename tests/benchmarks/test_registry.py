"""The registries are data: every task composes a valid config under every method, and
each method's overrides select the searcher and scheduler they name."""

from __future__ import annotations

import pytest
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from benchmarks.definitions import BENCHMARKS, QUICK_TASKS, BenchmarkDefinition, shrink
from benchmarks.methods import DEFAULT, METHODS, RANDOM_BASELINE
from benchmarks.native_optuna import run_native_optuna
from benchmarks.synthetic import Hartmann6Objective
from hpo.config import compose_config
from hpo.space import build_search_space
from hpo.sweep.asha import SuccessiveHalving
from hpo.sweep.optuna_bridge import StudySearcher
from hpo.sweep.runner import make_scheduler, make_searcher


def test_at_least_four_real_tasks_a_regression_and_the_synthetic_one():
    real = [d for d in BENCHMARKS.values() if d.objective == "model"]
    assert len(real) >= 4
    assert any(d.metric == "val_rmse" for d in real)  # diabetes, a regression
    assert [d.name for d in BENCHMARKS.values() if d.objective == "hartmann6"] == ["hartmann6"]
    assert set(QUICK_TASKS) <= set(BENCHMARKS)
    for name, definition in BENCHMARKS.items():
        assert name == definition.name
        assert definition.epoch_budget >= definition.max_epochs
        assert definition.n_workers >= 1 and definition.mode in ("min", "max")


def test_the_methods_of_the_issue_and_the_former_default_are_registered():
    assert set(METHODS) == {
        "asha_tpe",
        "asha_tpe_multivariate",
        "asha_tpe_stock",
        "asha_random",
        "fifo_tpe",
        "fifo_random",
        "hyperband_tpe",
        "optuna_native",
    }
    assert DEFAULT in METHODS and RANDOM_BASELINE in METHODS
    assert METHODS["optuna_native"].baseline is run_native_optuna
    assert all(m.baseline is None for n, m in METHODS.items() if n != "optuna_native")
    default, _ = compose_config(list(METHODS[DEFAULT].overrides))
    former, _ = compose_config(list(METHODS["asha_tpe_multivariate"].overrides))
    assert (default.searcher.multivariate, former.searcher.multivariate) == (False, True)


EXPECTED = {  # searcher, its class, scheduler class, brackets
    "asha_tpe": ("tpe", StudySearcher, SuccessiveHalving, 1),
    "asha_tpe_multivariate": ("tpe", StudySearcher, SuccessiveHalving, 1),
    "asha_tpe_stock": ("tpe", OptunaSearch, SuccessiveHalving, 1),
    "asha_random": ("random", StudySearcher, SuccessiveHalving, 1),
    "fifo_tpe": ("tpe", StudySearcher, FIFOScheduler, None),
    "fifo_random": ("random", StudySearcher, FIFOScheduler, None),
    "hyperband_tpe": ("tpe", StudySearcher, SuccessiveHalving, 3),
}


@pytest.mark.parametrize("task", list(BENCHMARKS))
@pytest.mark.parametrize("method", list(EXPECTED))
def test_method_overrides_mean_what_hpo_sweep_means(task, method, tmp_path):
    definition = BENCHMARKS[task]
    cfg, _ = compose_config([*definition.hydra_overrides(3), *METHODS[method].overrides])
    sampler, searcher_cls, scheduler_cls, brackets = EXPECTED[method]
    assert (cfg.seed, cfg.metric, cfg.trainer.max_epochs) == (
        3,
        definition.metric,
        definition.max_epochs,
    )
    assert cfg.searcher.name == sampler
    if definition.objective == "hartmann6":
        space = Hartmann6Objective(definition.max_epochs, 0).space
    else:
        space, _ = build_search_space(cfg.search_space)
    searcher = make_searcher(cfg, space, definition.n_workers, tmp_path / "journal.log")
    assert type(searcher) is searcher_cls
    scheduler = make_scheduler(cfg)
    assert type(scheduler) is scheduler_cls
    if brackets is not None:
        assert len(scheduler.brackets) == brackets
    assert cfg.scheduler.max_t == definition.max_epochs  # the top rung is the top fidelity


def test_adding_a_task_is_one_entry():
    custom = BenchmarkDefinition(
        name="iris",
        overrides=("data=iris", "cv.folds=3"),
        metric="val_loss",
        mode="min",
        max_epochs=4,
        epoch_budget=8,
        time_budget_s=None,
        n_workers=1,
        test_metric="test_accuracy",
        test_mode="max",
    )
    cfg, _ = compose_config(custom.hydra_overrides(0))
    assert cfg.data.name == "iris" and cfg.trainer.max_epochs == 4
    assert shrink(custom, 0.5).epoch_budget == 4
