"""Epoch results in batches (hpo.sweep.buffering), on a real local Ray Tune: every epoch
still reaches the driver, in order; the scheduler's epochs and checkpoints are not held
back; a trial stopped at a milestone trains no epoch past it; a failing trial keeps the
epochs before its error; a trial trains on while the driver takes its results, and Tune
still saves each checkpoint as it was reported; a trial stopped while it trained ahead
leaves its actor fit for the next trial."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from hpo.sweep.asha import SuccessiveHalving
from hpo.sweep.buffering import (
    BUFFER_ENV,
    RUN_AHEAD_MAX_EPOCH_S,
    buffered_trainable,
    buffers_results,
    judged_epochs,
    result_buffering,
)
from hpo.sweep.median import MedianStopping
from tune_trials import EPOCH_S, epochs_trial  # (tests/: the Ray workers import it)

pytestmark = pytest.mark.slow


class Arrivals(tune.Callback):
    """When each result reached the driver (``rows``: time.time(), trial, epoch);
    ``handle_s``: how long the driver then takes over each (a slow callback).
    ``handled``: (when it was done with it, epoch);
    ``checkpoints``: (trial's epoch then, the checkpoint's state) for each checkpoint Tune
    registered; ``pids``: each trial's worker process."""

    def __init__(self, handle_s: float = 0.0):
        self.rows, self.handled, self.checkpoints, self.pids = [], [], [], {}
        self.handle_s = handle_s

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.append((time.time(), trial.trial_id, result["epoch"]))
        self.pids[trial.trial_id] = result["pid"]
        if self.handle_s:
            time.sleep(self.handle_s)
        self.handled.append((time.time(), result["epoch"]))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        state = Path(checkpoint.path, "state").read_text()
        self.checkpoints.append((trial.last_result["epoch"], int(state)))


def run(tmp_path, scheduler, configs, buffer_s=0.3, handle_s=0.0, **kwargs):
    trainable = buffered_trainable(
        tune.with_resources(epochs_trial, {"cpu": 1}), scheduler, buffer_s
    )
    arrivals = Arrivals(handle_s)
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
    return analysis, arrivals.rows, arrivals


def batches(rows, gap=EPOCH_S / 2):
    """The epochs in groups that reached the driver together."""
    groups, last = [], None
    for at, _, epoch in rows:
        if last is None or at - last > gap:
            groups.append([])
        groups[-1].append(epoch)
        last = at
    return groups


def trained_rows(log: Path) -> list[tuple[int, int, float]]:
    """(x, epoch, when it ended: ``time.time()`` on the worker) of each epoch trained."""
    return [(int(x), int(e), float(t)) for x, e, t in map(str.split, log.read_text().splitlines())]


def trained(log: Path) -> list[tuple[int, int]]:
    """(x, epoch) of each epoch the trials trained, in order."""
    return [(x, epoch) for x, epoch, _ in trained_rows(log)]


def test_fifo_epochs_arrive_in_order_in_batches_and_a_checkpoint_alone(ray_local, tmp_path):
    log = tmp_path / "log"
    config = {"x": 1, "epochs": 24, "log": str(log), "checkpoint_at": [12, 24]}
    analysis, rows, _ = run(tmp_path, FIFOScheduler(), [config])
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
    analysis, rows, _ = run(tmp_path, scheduler, configs, buffer_s=5.0)
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


def test_a_trial_runs_ahead_only_after_a_result_the_driver_just_records():
    scheduler = SuccessiveHalving("value", "max", max_t=27, grace_period=3, reduction_factor=3)
    trainable = buffered_trainable(epochs_trial, scheduler, 1.0)
    state = SimpleNamespace(judged_epochs=trainable.judged_epochs, hpo_held=None)

    def may(**result):
        return trainable._may_run_ahead(state, {"epoch": 2, "time_this_iter_s": 0.1, **result})

    assert may()
    assert not may(epoch=3)  # an ASHA milestone: the trial may be stopped there
    assert not may(should_checkpoint=True)  # until Tune has saved it
    assert not may(done=True) and not may(__duplicate__=True)  # the trial's end
    assert not may(time_this_iter_s=RUN_AHEAD_MAX_EPOCH_S + 0.5)  # long epochs: no gain
    state.hpo_held = {"epoch": 3}  # a checkpoint held for the next call
    assert not may()


def test_a_failing_trial_keeps_its_earlier_epochs_and_fails(ray_local, tmp_path):
    log = tmp_path / "log"
    config = {"x": 1, "epochs": 20, "log": str(log), "fail_at": 8}
    analysis, rows, _ = run(tmp_path, FIFOScheduler(), [config], buffer_s=5.0)
    (trial,) = analysis.trials
    assert trial.status == "ERROR" and "this epoch fails" in Path(trial.error_file).read_text()
    assert [epoch for *_, epoch in rows] == list(range(1, 8))  # all before the error


def test_a_trial_trains_on_while_the_driver_takes_its_results(ray_local, tmp_path):
    """A driver that takes 0.1 s over each result. Without running ahead, the epoch after
    a batch can only start once the driver is done with the batch and asks for more;
    here it has ended before that, after every batch but those at a checkpoint (the
    checkpoint's own, and the one a checkpoint cuts short). And Tune registers every
    checkpoint with the state of the epoch that reported it."""
    log = tmp_path / "log"
    config = {"x": 1, "epochs": 16, "log": str(log), "checkpoint_at": [4, 10, 16]}
    analysis, rows, seen = run(tmp_path, FIFOScheduler(), [config], handle_s=0.1)
    (trial,) = analysis.trials
    assert trial.status == "TERMINATED" and trial.error_file is None
    assert [epoch for *_, epoch in rows] == list(range(1, 17))
    ended = {epoch: at for _, epoch, at in trained_rows(log)}  # a single trial's
    handled = {epoch: at for at, epoch in seen.handled}
    ends = [group[-1] for group in batches(rows, gap=0.05)][:-1]  # (not the trial's end)
    at_checkpoint = set(config["checkpoint_at"])
    free = [last for last in ends if not {last, last + 1} & at_checkpoint]
    assert len(free) >= 3, ends
    assert all(ended[last + 1] < handled[last] for last in free), (ends, ended, handled)
    assert seen.checkpoints == [(4, 4), (10, 10), (16, 16)]
    assert Path(trial.checkpoint.path, "state").read_text() == "16"
    assert trained(log) == [(1, e) for e in range(1, 17)]


def test_a_trial_stopped_while_it_trains_ahead_leaves_its_actor_fit_for_the_next(
    ray_local, tmp_path
):
    """A stopper ends the first trial at epoch 2, the first of a batch, while the trial
    trains the next batch: its worker logs epochs that ended after the driver received
    epoch 2 (without running ahead it would be waiting for the driver's next call), yet
    the driver sees epochs 1-2 of it only; the same actor (reused) then runs the second
    trial whole."""
    log = tmp_path / "log"
    configs = [{"x": x, "epochs": 20, "log": str(log), "checkpoint_at": [20]} for x in (1, 3)]
    analysis, rows, seen = run(
        tmp_path,
        FIFOScheduler(),
        configs,
        handle_s=0.05,
        stop=lambda trial_id, result: result["value"] == 2,  # x=1 at epoch 2 only
    )
    first, second = analysis.trials
    by_trial = {}
    for _, trial_id, epoch in rows:
        by_trial.setdefault(trial_id, []).append(epoch)
    assert by_trial[first.trial_id] == [1, 2]
    assert by_trial[second.trial_id] == list(range(1, 21))
    assert first.status == second.status == "TERMINATED"
    arrived = {(trial_id, epoch): at for at, trial_id, epoch in rows}
    first_ended = [at for x, _, at in trained_rows(log) if x == 1]
    assert max(first_ended) > arrived[first.trial_id, 2], (trained_rows(log), arrived)
    assert Path(second.checkpoint.path, "state").read_text() == "20"
    assert [e for x, e in trained(log) if x == 3] == list(range(1, 21))
    assert seen.pids[first.trial_id] == seen.pids[second.trial_id]  # one actor, reused
