"""Each scheduler in conf/scheduler does in a real sweep what it says: asynchronous
Hyperband stops trials at its brackets' rungs, median stopping stops trials worse than
the median, PBT exploits (a trial goes on from another's checkpoint) and explores."""

from __future__ import annotations

import json
import statistics

import pytest

from hpo.sweep import run_sweep

pytestmark = pytest.mark.slow

BASE = [
    "budget.num_samples=8",
    "budget.max_concurrent_trials=1",  # one at a time: "the others" are the earlier trials
    "trainer.patience=6",  # trials end by the scheduler or at max_epochs
    "cluster.num_cpus=1",
]


def last_epochs(frame):
    status = frame.groupby("trial_id")["status"].last()
    return status, frame.groupby("trial_id")["epoch"].max()


def test_hyperband_stops_trials_at_the_rungs_of_their_own_bracket(ray_local, small_cfg):
    cfg = small_cfg(*BASE, "scheduler=hyperband", "scheduler.brackets=2")
    result = run_sweep(cfg, stream=None)
    status, last = last_epochs(result.trials)
    brackets = result.extra["brackets"]  # per bracket: milestone -> {trial: value}
    assert len(brackets) == 2 and sorted(brackets[1]) == [2, 4]  # grace 1 x factor 2
    bracket_of = {
        trial: b
        for b, rungs in enumerate(brackets)
        for records in rungs.values()
        for trial in records
    }
    assert set(bracket_of.values()) == {0, 1}  # trials went to both brackets
    stopped = status[status == "stopped"].index
    assert len(stopped) >= 2  # unlike Ray's synchronous HyperBand fed one trial at a time
    for trial in stopped:
        assert last[trial] in brackets[bracket_of[trial]]  # stopped at its bracket's rung
        assert last[trial] < cfg.trainer.max_epochs
    # a trial of bracket 1 is never stopped before its first rung (epoch 2)
    assert all(last[t] >= 2 for t in stopped if bracket_of[t] == 1)


def test_median_rule_stops_trials_worse_than_the_median(ray_local, small_cfg):
    cfg = small_cfg(
        *BASE, "scheduler=median", "scheduler.grace_period=1", "scheduler.min_samples=2"
    )
    result = run_sweep(cfg, stream=None)
    frame = result.trials
    status, last = last_epochs(frame)
    stopped = status[status == "stopped"].index
    assert len(stopped) >= 1
    order = frame.drop_duplicates("trial_id").set_index("trial_id")["trial_index"]
    curves = {t: g.set_index("epoch")["val_loss"] for t, g in frame.groupby("trial_id")}
    for trial in stopped:
        epoch = last[trial]
        earlier = [t for t in curves if order[t] < order[trial] and curves[t].index.max() >= epoch]
        means = [curves[t][curves[t].index <= epoch].mean() for t in earlier]
        assert len(means) >= 2
        # its best loss so far was above the median running mean of the earlier trials
        assert curves[trial][curves[trial].index <= epoch].min() > statistics.median(means)
    assert result.extra["scheduler_state"]["stopped"] == {t: last[t] for t in stopped}


def test_pbt_exploits_a_better_trials_checkpoint_and_explores(ray_local, small_cfg):
    cfg = small_cfg(
        "budget.num_samples=4",
        "budget.max_concurrent_trials=2",
        "trainer.max_epochs=10",
        "trainer.patience=10",
        "trainer.batch_size=4",  # slower epochs: the two trials overlap long enough
        "scheduler=pbt",
        "searcher=random",
        "scheduler.perturbation_interval=2",
        "scheduler.quantile_fraction=0.5",
        "cluster.num_cpus=2",
    )
    result = run_sweep(cfg, stream=None)
    assert result.counts["failed"] == 0
    rows = [json.loads(line) for line in (result.run_dir / "trials.jsonl").read_text().splitlines()]
    exploited = 0
    for i, row in enumerate(rows):
        earlier = [r for r in rows[:i] if r["trial_id"] == row["trial_id"]]
        first = next((r for r in earlier if r["event"] == "start"), None)
        if row["event"] != "start" or first is None:
            continue
        if row["params"]["optim.lr"] == first["params"]["optim.lr"]:
            continue  # paused and resumed as it was (PBT lets another trial run)
        # a restart with new hyperparameters (explore) ...
        assert 1e-4 * 0.8 <= row["params"]["optim.lr"] <= 3e-2 * 1.2
        # ... going on from another trial's checkpoint (exploit): its next epoch follows
        # one that another trial had reported
        epoch = next(
            (
                r["epoch"]
                for r in rows[i:]
                if r["trial_id"] == row["trial_id"] and r["event"] == "result"
            ),
            None,
        )
        if epoch is None:  # restarted as the sweep ended: it reported nothing more
            continue
        assert any(
            r["event"] == "result" and r["trial_id"] != row["trial_id"] and r["epoch"] == epoch - 1
            for r in rows[:i]
        )
        exploited += 1
    assert exploited >= 1, "PBT never exploited"
