"""The simulated benchmark on a few of the recorded real curves: the lookup, the event
loop's budget, clock and concurrency, the real schedulers' decisions, and the statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from benchmarks import replay, replay_report
from benchmarks.definitions import BENCHMARKS
from benchmarks.record_curves import RECORDED
from hpo.config import compose_config

TASK = "digits"


@pytest.fixture(scope="module")
def task_cfg():
    cfg, _ = compose_config(BENCHMARKS[TASK].hydra_overrides(0))
    return cfg


@pytest.fixture(scope="module")
def curves(task_cfg):
    """The first 40 recorded digits curves (real hpo trials, benchmarks.record_curves)."""
    from hpo.space import build_search_space

    table = pd.read_parquet(RECORDED)
    table = table[(table["task"] == TASK) & (table["trial"] <= 40)]
    space, _ = build_search_space(task_cfg.search_space)
    return replay.Curves.from_table(table, "val_loss", "min", space)


def method_cfg(name: str, seed: int = 0):
    cfg, _ = compose_config(
        [*BENCHMARKS[TASK].hydra_overrides(seed), *replay.REPLAY_METHODS[name].overrides]
    )
    return cfg


def test_a_recorded_configuration_is_answered_by_its_own_curve(curves):
    for index in (0, 7, len(curves.params) - 1):
        assert curves.nearest(curves.params[index]) == index
    best = min(curves.curve_best(i) for i in range(len(curves.values)))
    assert curves.best == best and curves.regret(best) == 0.0
    assert curves.regret(best + curves.scale) == pytest.approx(1.0)
    assert -1.0 <= replay.lookup_fidelity(curves) <= 1.0


def test_one_worker_runs_curves_back_to_back_within_the_budget(curves):
    rows = replay.run_replay(
        curves, replay.REPLAY_METHODS["fifo_random"], method_cfg("fifo_random"), 30, 1
    )
    assert len(rows) == 30 and list(rows["cum_epochs"]) == list(range(1, 31))
    # Sequential: the clock is the sum of the recorded epoch times of the curves it used.
    spent = sum(curves.times[c][e - 1] for c, e in zip(rows["curve"], rows["epoch"]))
    assert rows["time_s"].iloc[-1] == pytest.approx(spent)
    # FIFO stops nothing: every trial but the last in flight runs its whole curve.
    for _, trial in list(rows.groupby("trial", sort=False))[:-1]:
        assert len(trial) == len(curves.values[int(trial["curve"].iloc[0])])
    assert rows["regret"].is_monotonic_decreasing


def test_four_workers_finish_in_recorded_time_order(curves):
    method = replay.REPLAY_METHODS["fifo_random"]
    one = replay.run_replay(curves, method, method_cfg("fifo_random"), 40, 1)
    four = replay.run_replay(curves, method, method_cfg("fifo_random"), 40, 4)
    assert four["time_s"].is_monotonic_increasing
    assert four["time_s"].iloc[-1] < one["time_s"].iloc[-1]
    first = four.groupby("trial")["time_s"].min().sort_values()
    last = four.groupby("trial")["time_s"].max()
    for at in first:  # never more than 4 trials between their first and last report
        assert int(((first <= at) & (last >= at)).sum()) <= 4


def test_the_default_stops_trials_at_its_rungs_and_natives_prune(curves):
    for name in ("asha_tpe", "ray_stock", "optuna_native"):
        rows = replay.run_replay(curves, replay.REPLAY_METHODS[name], method_cfg(name), 60, 1)
        lengths = rows.groupby("trial")["epoch"].max()
        full = [len(curves.values[c]) for c in rows.groupby("trial")["curve"].first()]
        stopped = (lengths.to_numpy() < np.asarray(full))[:-1]  # the last is cut by the budget
        assert stopped.any(), name  # its scheduler (pruner) stopped some trial early
        assert len(rows) == 60


def test_statistics_on_hand_made_runs():
    frame = pd.DataFrame(
        {
            "task": ["a"] * 6,
            "workers": [1] * 6,
            "seed": [0, 1, 2] * 2,
            "method": ["x"] * 3 + ["y"] * 3,
            "final_regret": [0.0, 0.5, 0.2, 0.1, 0.5, math.inf],
        }
    )
    result = replay_report.won_tied_lost(frame, "x", "y")
    assert (result["won"], result["tied"], result["lost"]) == (2, 1, 0)
    assert result["ci_low"] <= result["mean_gain"] <= result["ci_high"]
    low, high = replay_report.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= low <= 2.5 <= high <= 4.0
    rows = pd.DataFrame({"time_s": [1.0, 2.0, 3.0], "regret": [0.5, 0.2, 0.0]})
    assert replay_report.time_to(rows, 0.2) == 2.0 and replay_report.time_to(rows, -1) == math.inf


def test_run_all_measures_time_to_the_random_runs_target(curves):
    cfg = OmegaConf.to_container(method_cfg("fifo_random"))
    assert cfg["trainer"]["max_epochs"] == 9
    frame = replay_report.run_all(
        {TASK: curves}, ["asha_tpe", "fifo_random"], [0, 1], [1], trials=3, stream=None
    )
    assert len(frame) == 4 and set(frame["budget_epochs"]) == {27}
    random_rows = frame[frame["method"] == "fifo_random"]
    assert (random_rows["ttt_ratio"] <= 1.0).all()  # random reaches its own final value
    assert (frame["final_regret"] >= 0).all()


def test_the_forest_surrogate_is_smooth_noisy_and_held_out_better(curves):
    from benchmarks.surrogate import ForestSurrogate, NearestCurve, fold_noise

    noise = fold_noise(TASK)
    assert noise.shape == (9,) and (noise > 0).all()  # from real per-fold values
    forest = ForestSurrogate(curves, noise)
    rng = np.random.default_rng(0)
    params = curves.params[3]
    first, again = forest.answer(params, rng), forest.answer(params, rng)
    # The same configuration: one true curve, two noisy draws, the nearest curve's length.
    np.testing.assert_array_equal(first.truth, again.truth)
    assert not np.allclose(first.observed, again.observed)
    assert len(first.observed) == len(curves.values[3]) and first.curve == 3
    # Two nearby configurations that share a nearest curve get different true curves.
    nudged = {**params, "optim.lr": params["optim.lr"] * 1.05}
    assert curves.nearest(nudged) == 3
    assert not np.allclose(forest.answer(nudged, rng).truth, first.truth)
    assert forest.regret(forest.best) == 0.0
    assert forest.regret(forest.best + forest.scale) == pytest.approx(1.0)
    assert forest.fidelity() > NearestCurve(curves).fidelity()


def test_a_forest_replay_charges_the_true_value_of_the_incumbent(curves):
    from benchmarks.surrogate import make_responder

    forest = make_responder("forest", curves)
    rows = replay.run_replay(
        curves, replay.REPLAY_METHODS["asha_tpe"], method_cfg("asha_tpe"), 60, 2, forest
    )
    assert len(rows) == 60 and (rows["regret"] >= 0).all()
    assert rows["best_so_far"].is_monotonic_decreasing
    # What the method saw is noisy: not the surrogate's mean.
    answer = forest.answer(curves.params[0], np.random.default_rng(1))
    assert not np.allclose(answer.observed, answer.truth)
