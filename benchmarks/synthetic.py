"""Hartmann-6 with an epoch fidelity: a cheap multi-fidelity task with a known optimum.

A configuration is a point ``x`` in [0, 1]^6 (keys ``x0`` .. ``x5``). After epoch ``t`` it
reports

    y(x, t) = f(x) + BIAS * exp(-(t - 1) / TAU) + NOISE / sqrt(t) * eps_t

where ``f`` is the Hartmann-6 function (global minimum -3.32237), the bias term is a
learning curve that every configuration shares (early epochs look worse, as real losses
do) and ``eps_t`` is standard normal noise drawn per configuration, seed and epoch, so
early epochs rank configurations less reliably than late ones. The exact (simple) regret
of a chosen configuration is ``f(x) - HARTMANN6_MINIMUM``: no test set is needed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from optuna.distributions import FloatDistribution

# hpo.train.trial.FINISHED_KEY, spelled out: importing that module would load torch and
# Lightning into every Ray worker that runs this cheap function (a test checks they match).
FINISHED_KEY = "trial_finished"
METRIC = "objective"
BIAS = 0.5
TAU = 3.0
NOISE = 0.4
DIMENSIONS = 6
KEYS = tuple(f"x{i}" for i in range(DIMENSIONS))

_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)
_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN6_ARGMIN = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
HARTMANN6_MINIMUM = -3.32237


def hartmann6(x: np.ndarray | list[float]) -> float:
    """The noise-free Hartmann-6 function on [0, 1]^6."""
    x = np.asarray(x, dtype=np.float64)
    return float(-(_ALPHA * np.exp(-((_A * (x - _P) ** 2).sum(axis=1)))).sum())


def hartmann6_space() -> dict[str, FloatDistribution]:
    return {key: FloatDistribution(0.0, 1.0) for key in KEYS}


def point(params: Mapping[str, Any]) -> np.ndarray:
    return np.array([float(params[key]) for key in KEYS])


def _noise_rng(x: np.ndarray, noise_seed: int) -> np.random.Generator:
    # The same configuration under the same seed sees the same noise, whichever method
    # proposed it and however often it was paused and resumed.
    key = json.dumps([noise_seed, [round(v, 12) for v in x.tolist()]]).encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


def noisy_value(x: np.ndarray, epoch: int, noise_seed: int) -> float:
    """``y(x, epoch)``: what a configuration reports after ``epoch`` epochs."""
    eps = _noise_rng(x, noise_seed).standard_normal(epoch)[-1]
    curve = BIAS * math.exp(-(epoch - 1) / TAU)
    return hartmann6(x) + curve + NOISE / math.sqrt(epoch) * float(eps)


def regret(params: Mapping[str, Any]) -> float:
    """The exact simple regret of a configuration: f(x) - min f."""
    return hartmann6(point(params)) - HARTMANN6_MINIMUM


class Hartmann6Objective:
    """The synthetic task, with the same interface as a model task (see model_task.py).

    Args:
        max_epochs: the top fidelity.
        noise_seed: seeds the evaluation noise (the benchmark seed).
    """

    metric = METRIC
    mode = "min"
    exact_regret = staticmethod(regret)  # the incumbent's exact regret, for anytime curves

    def __init__(self, max_epochs: int, noise_seed: int) -> None:
        self.max_epochs = int(max_epochs)
        self.noise_seed = int(noise_seed)
        self.space = hartmann6_space()

    def epochs(self, params: Mapping[str, Any], start: int = 1) -> Iterator[dict[str, Any]]:
        """The reports of one configuration, one per epoch, from epoch ``start``."""
        x = point(params)
        for epoch in range(start, self.max_epochs + 1):
            yield {
                METRIC: noisy_value(x, epoch, self.noise_seed),
                "epoch": epoch,
                FINISHED_KEY: epoch == self.max_epochs,
            }

    def ray_trainable(self):
        """A Ray Tune function trainable that reports every epoch and checkpoints, so
        HyperBand can pause and resume it."""
        from ray import tune

        objective = self

        def hartmann6_trial(config: dict[str, Any]) -> None:
            start = 1
            checkpoint = tune.get_checkpoint()
            if checkpoint is not None:
                with checkpoint.as_directory() as directory:
                    with open(os.path.join(directory, "epoch.json")) as handle:
                        start = json.load(handle)["epoch"] + 1
            for report in objective.epochs(config, start):
                with tempfile.TemporaryDirectory() as directory:
                    with open(os.path.join(directory, "epoch.json"), "w") as handle:
                        json.dump({"epoch": report["epoch"]}, handle)
                    tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))

        return hartmann6_trial

    def test_scores(self, params: Mapping[str, Any], epoch: int) -> dict[str, float]:
        """The chosen configuration's exact regret (the synthetic "test score")."""
        return {"test_regret": regret(params)}
