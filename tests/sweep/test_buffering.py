"""Epoch results in batches (hpo.sweep.buffering), on a real local Ray Tune: every epoch
still reaches the driver, in order; the scheduler's epochs and checkpoints are not held
back; a trial stopped at a milestone trains no epoch past it; a failing trial keeps the
epochs before its error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from hpo.sweep.asha import SuccessiveHalving
from hpo.sweep.buffering import (
    BUFFER_ENV,
    buffered_trainable,
    buffers_results,
    judged_epochs,
    result_buffering,
)
from hpo.sweep.median import MedianStopping
from tune_trials import EPOCH_S, epochs_trial  # (tests/: the Ray workers import it)

pytestmark = pytest.mark.slow


class Arrivals(tune.Callback):
    """When each result reached the driver."""

    def __init__(self):
        self.rows = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.append((time.monotonic(), trial.trial_id, result["epoch"]))


def run(tmp_path, scheduler, configs, buffer_s=0.3, **kwargs):
    trainable = buffered_trainable(
        tune.with_resources(epochs_trial, {"cpu": 1}), scheduler, buffer_s
    )
    arrivals = Arrivals()
    with result_buffering(buffers_results(trainable)):
        analysis = tune.run(
            trainable,
            config=tune.grid_search(configs) if len(configs) > 1 else configs[0],
            scheduler=scheduler,
            metric="value",
            mode="max",
            callbacks=[arrivals],
            storage_path=str(tmp_path / "tune"),
            reuse_actors=True,
            max_concurrent_trials=1,
            raise_on_failed_trial=False,
            verbose=0,
            **kwargs,
        )
    return analysis, arrivals.rows


def batches(rows, gap=EPOCH_S / 2):
    """The epochs in groups that reached the driver together."""
    groups, last = [], None
    for at, _, epoch in rows:
        if last is None or at - last > gap:
            groups.append([])
        groups[-1].append(epoch)
        last = at
    return groups


def trained(log: Path) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in line.split()) for line in log.read_text().splitlines()]


def test_fifo_epochs_arrive_in_order_in_batches_and_a_checkpoint_alone(ray_local, tmp_path):
    log = tmp_path / "log"
    config = {"x": 1, "epochs": 24, "log": str(log), "checkpoint_at": [12, 24]}
    analysis, rows = run(tmp_path, FIFOScheduler(), [config])
    (trial,) = analysis.trials
    assert trial.status == "TERMINATED" and trial.error_file is None
    assert [epoch for *_, epoch in rows] == list(range(1, 25))  # every epoch, in order
    groups = batches(rows)
    assert groups[0] == [1]  # a trial's first epoch goes at once
    assert max(len(g) for g in groups) >= 4  # 0.3 s buffers of 0.03 s epochs
    assert len(groups) < 12  # (not one round trip per epoch)
    # a checkpoint's result goes on its own just after the batch before it (Tune saves
    # it before it asks for more): it ends that batch
    assert {12, 24} <= {group[-1] for group in groups}
    assert Path(trial.checkpoint.path, "state").read_text() == "24"
    assert trained(log) == [(1, e) for e in range(1, 25)]
    assert os.environ.get(BUFFER_ENV) is None  # put back after the run


def test_asha_milestones_are_sent_at_once_and_a_stopped_trial_trains_no_further(
    ray_local, tmp_path
):
    scheduler = SuccessiveHalving("value", "max", max_t=27, grace_period=3, reduction_factor=3)
    assert judged_epochs(scheduler) == {3, 9, 27}
    log = tmp_path / "log"
    configs = [{"x": x, "epochs": 27, "log": str(log)} for x in (3, 1)]  # the 2nd is worse
    analysis, rows = run(tmp_path, scheduler, configs, buffer_s=5.0)
    by_trial = {}
    for row in rows:
        by_trial.setdefault(row[1], []).append(row)
    first, second = (by_trial[t.trial_id] for t in analysis.trials)
    assert [epoch for *_, epoch in first] == list(range(1, 28))
    # with 5 s buffers of 0.03 s epochs only the milestones (and the first epoch) end one
    assert [g[-1] for g in batches(first)] == [1, 3, 9, 27]
    # x=1 is below x=3 at the first rung: stopped at epoch 3, and epoch 4 never trained
    assert [epoch for *_, epoch in second] == [1, 2, 3]
    assert [e for x, e in trained(log) if x == 1] == [1, 2, 3]


def test_a_scheduler_that_judges_every_epoch_gets_no_buffering(tmp_path):
    median = MedianStopping("value", "max", grace_period=1, min_samples=2)
    assert judged_epochs(median) is None
    assert buffered_trainable(epochs_trial, median, 1.0) is epochs_trial
    assert buffered_trainable(epochs_trial, FIFOScheduler(), 0) is epochs_trial
    assert buffers_results(buffered_trainable(epochs_trial, FIFOScheduler(), 1.0))


def test_a_failing_trial_keeps_its_earlier_epochs_and_fails(ray_local, tmp_path):
    log = tmp_path / "log"
    config = {"x": 1, "epochs": 20, "log": str(log), "fail_at": 8}
    analysis, rows = run(tmp_path, FIFOScheduler(), [config], buffer_s=5.0)
    (trial,) = analysis.trials
    assert trial.status == "ERROR" and "this epoch fails" in Path(trial.error_file).read_text()
    assert [epoch for *_, epoch in rows] == list(range(1, 8))  # all before the error
