"""Fold racing: a trial clearly worse than the incumbent on the paired folds stops early."""

from __future__ import annotations

import pytest

from hpo.sweep import run_sweep
from hpo.sweep.racing import paired_worse_p

pytestmark = pytest.mark.slow


def test_paired_test_is_one_sided_and_paired():
    incumbent = [0.30, 0.50, 0.70]  # folds differ a lot; the pairing removes that
    assert paired_worse_p([0.35, 0.56, 0.74], incumbent, "min") < 0.05
    assert paired_worse_p([0.25, 0.45, 0.66], incumbent, "min") > 0.5  # better: not worse
    assert paired_worse_p([0.35, 0.56, 0.74], incumbent, "max") > 0.5  # higher is better
    assert paired_worse_p([0.1, 0.9, 0.2], incumbent, "min") > 0.05  # mixed: no evidence


def test_fold_race_stops_trials_worse_than_the_incumbent_on_paired_folds(ray_local, small_cfg):
    cfg = small_cfg(
        "budget.num_samples=8",
        "budget.max_concurrent_trials=1",
        "trainer.patience=6",
        "scheduler=fifo",  # nothing else stops trials
        "scheduler.racing=true",
        "scheduler.racing_alpha=0.1",
        "cluster.num_cpus=1",
    )
    result = run_sweep(cfg, stream=None)
    frame = result.trials
    raced = result.extra["scheduler_state"]["raced_out"]
    status = frame.groupby("trial_id")["status"].last()
    assert raced and set(raced) == set(status[status == "stopped"].index)
    order = frame.drop_duplicates("trial_id").set_index("trial_id")["trial_index"]
    for trial, epoch in raced.items():
        assert frame[frame.trial_id == trial]["epoch"].max() == epoch < cfg.trainer.max_epochs
        # the incumbent at that epoch among the trials before it, and the paired test
        at = frame[(frame.epoch == epoch) & (frame.trial_index < order[trial])]
        best = at.loc[at["val_loss"].idxmin()]
        mine = frame[(frame.trial_id == trial) & (frame.epoch == epoch)].iloc[0]
        assert mine["val_loss"] > best["val_loss"]
        assert paired_worse_p(list(mine["fold_val_loss"]), list(best["fold_val_loss"]), "min") < 0.1
    print(f"\nfold racing: {len(raced)} of 8 trials raced out at epochs {sorted(raced.values())}")
