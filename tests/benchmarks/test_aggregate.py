"""Anytime curves, time-to-target, ranks and medians on small hand-made results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import aggregate
from benchmarks.anytime import AnytimeLog, best_so_far, chosen_row, incumbent_scores


def test_the_log_counts_epochs_and_keeps_the_budget():
    log = AnytimeLog("val_loss", epoch_budget=3, time_budget_s=None)
    for i, value in enumerate([0.9, 0.5, 0.7]):
        assert not log.exhausted()
        log.add("t1", {"lr": i}, {"val_loss": value, "epoch": i + 1})
    assert log.exhausted()
    log.add("t2", {"lr": 9}, {"val_loss": 0.1, "epoch": 1})  # in flight when it ran out
    assert log.epochs_spent == 4
    frame = log.frame()
    assert list(frame["cum_epochs"]) == [1, 2, 3]  # the fourth came after the budget
    assert frame["wall_s"].is_monotonic_increasing
    assert chosen_row(frame, "min")["value"] == 0.5


def test_a_time_budget_ends_a_run_too():
    log = AnytimeLog("val_loss", epoch_budget=100, time_budget_s=0.0)
    assert log.exhausted()


def test_best_so_far_ignores_failures_and_never_gets_worse():
    values = pd.Series([math.nan, 0.8, 0.9, math.inf, 0.3, 0.4])
    best = best_so_far(values, "min")
    assert math.isnan(best[0]) and list(best[1:]) == [0.8, 0.8, 0.8, 0.3, 0.3]
    assert list(best_so_far(pd.Series([0.1, 0.5, 0.2]), "max")) == [0.1, 0.5, 0.5]


def test_incumbent_scores_follow_the_best_observed_configuration():
    frame = pd.DataFrame(
        {"value": [0.5, 0.7, 0.2, 0.3], "params": [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}]}
    )
    assert incumbent_scores(frame, "min", lambda p: p["x"] * 10) == [10, 10, 30, 30]


def runs_and_curves():
    """Two seeds, three methods; budget 4. 'slow' never reaches random's final best."""
    best = {
        ("fifo_random", 0): [0.9, 0.6, 0.6, 0.5],
        ("fast", 0): [0.5, 0.4, 0.4, 0.4],
        ("slow", 0): [0.9, 0.9, 0.8, 0.8],
        ("fifo_random", 1): [0.7, 0.7, 0.7, 0.7],
        ("fast", 1): [0.9, 0.7, 0.6, 0.6],
        ("slow", 1): [0.9, 0.9, 0.9, 0.9],
    }
    curves, runs = [], []
    for (method, seed), values in best.items():
        curves.append(
            pd.DataFrame(
                {
                    "task": "t",
                    "method": method,
                    "seed": seed,
                    "cum_epochs": [1, 2, 3, 4],
                    "best_so_far": values,
                }
            )
        )
        runs.append(
            {
                "task": "t",
                "method": method,
                "seed": seed,
                "mode": "min",
                "test_mode": "max",
                "epoch_budget": 4,
                "final_cv": values[-1],
                "test_score": 1 - values[-1],
                "test_metric": "test_accuracy",
                "trials": 3,
                "wall_s": 1.0,
            }
        )
    return pd.DataFrame(runs), pd.concat(curves, ignore_index=True)


def test_time_to_target_is_a_fraction_of_the_budget_or_inf():
    runs, curves = runs_and_curves()
    runs = aggregate.add_time_to_target(runs, curves, "fifo_random").set_index(["method", "seed"])
    assert runs.loc[("fifo_random", 0), "ttt_ratio"] == 1.0  # found its best at the end
    assert runs.loc[("fifo_random", 1), "ttt_ratio"] == 0.25
    assert runs.loc[("fast", 0), "ttt_ratio"] == 0.25  # 0.5 reached at the first epoch
    assert runs.loc[("fast", 1), "ttt_ratio"] == 0.5
    assert math.isinf(runs.loc[("slow", 0), "ttt_ratio"])


def test_ranks_are_per_task_and_seed_and_respect_each_mode():
    runs, _ = runs_and_curves()
    ranked = aggregate.add_ranks(runs)
    for _, group in ranked.groupby(["task", "seed"]):
        assert sorted(group["rank_cv"]) == [1.0, 2.0, 3.0]
        # test_score is 1 - cv with mode max, so the test ranks equal the CV ranks
        assert list(group["rank_cv"]) == list(group["rank_test"])
    by = ranked.set_index(["method", "seed"])
    assert by.loc[("fast", 0), "rank_cv"] == 1 and by.loc[("slow", 1), "rank_cv"] == 3


def test_median_and_iqr_treat_never_as_infinite():
    assert aggregate.median_iqr(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])) == (3.0, 2.0, 4.0)
    median, q25, q75 = aggregate.median_iqr(pd.Series([0.2, 0.4, math.inf, math.inf, math.inf]))
    assert math.isinf(median) and math.isinf(q75) and q25 == pytest.approx(0.4)
    assert aggregate.fmt_median_iqr(pd.Series([math.nan])) == "-"


def test_head_to_head_counts_seeds_where_the_default_wins():
    runs, _ = runs_and_curves()
    table = aggregate.head_to_head(runs, "fast", ["fifo_random", "slow"]).set_index("versus")
    assert table.loc["slow", "CV won-tied-lost"] == "2-0-0"
    assert table.loc["fifo_random", "CV won-tied-lost"] == "2-0-0"
    assert float(table.loc["slow", "CV median gain"]) == pytest.approx(
        float(np.median([0.8 - 0.4, 0.9 - 0.6]))
    )
    assert table.loc["slow", "test won-tied-lost"] == "2-0-0"  # mode max, same direction
    tied = aggregate.head_to_head(runs, "fifo_random", ["fifo_random"])
    assert list(tied["CV won-tied-lost"]) == ["0-2-0"]


def test_tables_render_as_markdown():
    runs, curves = runs_and_curves()
    runs = aggregate.add_ranks(aggregate.add_time_to_target(runs, curves, "fifo_random"))
    text = aggregate.markdown(aggregate.task_table(runs, {"fast": "Fast"}))
    lines = text.splitlines()
    assert lines[1].startswith("| ---") and len(lines) == 2 + 3
    assert "Fast" in text and "never" in text
