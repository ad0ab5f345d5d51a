"""Hartmann-6 with an epoch fidelity: known optimum, exact regret, noise that shrinks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import synthetic
from benchmarks.synthetic import (
    HARTMANN6_ARGMIN,
    HARTMANN6_MINIMUM,
    KEYS,
    Hartmann6Objective,
    hartmann6,
    noisy_value,
    regret,
)


def as_params(x) -> dict[str, float]:
    return dict(zip(KEYS, map(float, x)))


def test_the_known_optimum_and_exact_regret():
    assert hartmann6(HARTMANN6_ARGMIN) == pytest.approx(HARTMANN6_MINIMUM, abs=1e-4)
    assert regret(as_params(HARTMANN6_ARGMIN)) == pytest.approx(0.0, abs=1e-4)
    points = np.random.default_rng(0).uniform(size=(2000, 6))
    values = np.array([hartmann6(x) for x in points])
    assert values.min() > HARTMANN6_MINIMUM  # no random point beats the optimum
    assert all(regret(as_params(x)) > 0 for x in points[:50])


def test_noise_shrinks_with_epochs_and_the_curve_converges_to_f():
    points = np.random.default_rng(1).uniform(size=(400, 6))
    truth = np.array([hartmann6(x) for x in points])

    def residual_std(epoch: int) -> float:
        observed = np.array([noisy_value(x, epoch, noise_seed=0) for x in points])
        curve = synthetic.BIAS * math.exp(-(epoch - 1) / synthetic.TAU)
        return float(np.std(observed - truth - curve))

    stds = [residual_std(t) for t in (1, 3, 9, 27)]
    assert stds == sorted(stds, reverse=True)
    assert stds[0] == pytest.approx(synthetic.NOISE, rel=0.15)
    assert stds[-1] == pytest.approx(synthetic.NOISE / math.sqrt(27), rel=0.15)


def test_the_same_configuration_and_seed_sees_the_same_values():
    x = np.array(HARTMANN6_ARGMIN)
    assert noisy_value(x, 4, noise_seed=2) == noisy_value(x, 4, noise_seed=2)
    assert noisy_value(x, 4, noise_seed=2) != noisy_value(x, 4, noise_seed=3)
    assert noisy_value(x, 4, noise_seed=2) != noisy_value(x, 5, noise_seed=2)


def test_a_trial_reports_every_epoch_and_finishes_at_the_top_fidelity():
    objective = Hartmann6Objective(max_epochs=5, noise_seed=0)
    reports = list(objective.epochs(as_params(HARTMANN6_ARGMIN)))
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5]
    assert [r[synthetic.FINISHED_KEY] for r in reports] == [False] * 4 + [True]
    resumed = list(objective.epochs(as_params(HARTMANN6_ARGMIN), start=4))
    assert resumed == reports[3:]  # a resumed trial continues where it stopped
    assert objective.test_scores(as_params(HARTMANN6_ARGMIN), 5)["test_regret"] < 1e-3


def test_the_finished_flag_is_the_one_hpo_reports():
    from hpo.train.trial import FINISHED_KEY

    assert synthetic.FINISHED_KEY == FINISHED_KEY
