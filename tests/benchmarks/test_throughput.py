"""The throughput benchmark's pilot: how it reads an epoch's time from a sweep's rows."""

from __future__ import annotations

import math

import pandas as pd

from benchmarks.throughput import epoch_times


def rows(trial_id: str, times: list[float], folds: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": trial_id,
            "training_iteration": range(1, len(times) + 1),
            "time_this_iter_s": times,
            "folds_active": folds,
        }
    )


def test_the_pilot_epoch_leaves_out_first_epochs_and_epochs_after_a_fold_stopped():
    sweep = pd.concat(
        [
            # a worker's first trial: 2 s of one-time costs in its first epoch; two folds
            # stop early, after which an epoch trains three folds and costs less
            rows("a", [2.0, 0.10, 0.12, 0.11, 0.06, 0.06, 0.06], [5, 5, 5, 5, 3, 3, 3]),
            rows("b", [0.3, 0.13, 0.14], [5, 5, 5]),
        ]
    )
    found = epoch_times(sweep)
    assert math.isclose(found["epoch_s"], 0.12)  # the median of 0.10, 0.12, 0.11, 0.13, 0.14
    assert found["first_epoch_s"] == [2.0, 0.3]


def test_a_pilot_whose_trials_all_stopped_after_one_epoch_has_no_epoch_time():
    found = epoch_times(rows("a", [1.5], [5]))
    assert math.isnan(found["epoch_s"]) and found["first_epoch_s"] == [1.5]
