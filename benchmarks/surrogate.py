"""How the replay answers a configuration: the nearest recorded curve, or a smoothed surrogate.

* ``NearestCurve``: the recorded curve nearest the configuration, exactly. A method whose
  proposals cluster keeps hitting the same few curves (the same value for every nearby
  configuration), so it can neither improve on them nor be misled by noise.
* ``ForestSurrogate``: an extremely randomized forest (scikit-learn's ExtraTreesRegressor,
  bootstrapped) from the encoded configuration (log scale for log keys, each key in [0, 1],
  categoricals one-hot) to the whole curve, the log of the metric at every epoch (a curve that
  stopped early is continued at its last value). Nearby configurations get nearby but
  different curves. The observed curve is the forest's times ``exp(sd_e * z)``: one standard
  normal ``z`` per trial (the same folds move every epoch of a trial together) and ``sd_e``
  the standard error of the fold mean at epoch ``e``, the median over real trials whose
  per-fold values were recorded (benchmarks/results/curves_folds.parquet): a repeated
  configuration gets a fresh draw. The trial's length and epoch times are those of the
  nearest recorded curve.

Both charge the regret on the *true* value (the surrogate's mean, without the noise) of the
incumbent, the trial and epoch the method would pick by what it observed; 0 is the best
mean over the recorded configurations and 20,000 random ones, 1 the median recorded one.
``fidelity`` is the held-out rank correlation between a recorded curve's best value and the
answer's (leave-one-out for the lookup, out-of-bag for the forest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optuna.distributions import CategoricalDistribution

FOLDS = Path(__file__).resolve().parent / "results" / "curves_folds.parquet"
REFERENCE_SAMPLES = 20_000  # random configurations the surrogate's best is searched over


@dataclass
class Answer:
    """A trial's curve: what the method sees, its true values, the epochs' seconds, and the
    nearest recorded curve (a diagnostic: how many distinct curves a method reached)."""

    observed: np.ndarray
    truth: np.ndarray
    times: np.ndarray
    curve: int


class _Regret:
    mode: str
    best: float
    scale: float

    def regret(self, value: float) -> float:
        """How far ``value`` is from ``best``, in units of ``scale``."""
        if not math.isfinite(value):
            return math.inf
        gap = value - self.best if self.mode == "min" else self.best - value
        return max(0.0, gap) / self.scale


class NearestCurve(_Regret):
    """The nearest recorded curve, noise-free (the replay's first mode)."""

    name = "nearest"

    def __init__(self, curves) -> None:
        self.curves, self.mode = curves, curves.mode
        self.best, self.scale = curves.best, curves.scale

    def answer(self, params: dict[str, Any], rng: np.random.Generator) -> Answer:
        index = self.curves.nearest(params)
        values = self.curves.values[index]
        return Answer(values, values, self.curves.times[index], index)

    def fidelity(self) -> float:
        from benchmarks.replay import lookup_fidelity

        return lookup_fidelity(self.curves)


class ForestSurrogate(_Regret):
    """A forest from configuration to log curve, with fold-spread noise (see the module)."""

    name = "forest"

    def __init__(self, curves, noise_sd: np.ndarray, trees: int = 200, seed: int = 0) -> None:
        from sklearn.ensemble import ExtraTreesRegressor

        self.curves, self.mode = curves, curves.mode
        self.epochs = max(len(v) for v in curves.values)
        self.targets = np.stack([self._filled(v) for v in curves.values])
        self.noise_sd = np.resize(np.asarray(noise_sd, dtype=float), self.epochs)
        self.forest = ExtraTreesRegressor(
            n_estimators=trees, bootstrap=True, oob_score=True, max_features=0.7,
            random_state=seed, n_jobs=1,
        ).fit(curves.points, self.targets)  # fmt: skip
        recorded = self.forest.predict(curves.points)
        sample = np.stack([curves.encode(p) for p in random_configs(curves.space, seed)])
        reference = np.concatenate([recorded, self.forest.predict(sample)])
        pick = np.min if self.mode == "min" else np.max
        self.best = float(np.exp(pick(pick(reference, axis=1))))
        bests = np.exp(pick(recorded, axis=1))
        self.scale = abs(float(np.median(bests)) - self.best) or 1.0

    def _filled(self, values: np.ndarray) -> np.ndarray:
        """The log curve over every epoch, continued at its last value."""
        out = np.full(self.epochs, math.log(values[-1]))
        out[: len(values)] = np.log(values)
        return out

    def answer(self, params: dict[str, Any], rng: np.random.Generator) -> Answer:
        index = self.curves.nearest(params)
        length = len(self.curves.values[index])
        mean = self.forest.predict(self.curves.encode(params)[None, :])[0][:length]
        noisy = mean + self.noise_sd[:length] * rng.standard_normal()
        return Answer(np.exp(noisy), np.exp(mean), self.curves.times[index], index)

    def fidelity(self) -> float:
        """Out-of-bag Spearman correlation between each curve's best and the forest's."""
        pick = np.min if self.mode == "min" else np.max
        frame = pd.DataFrame(
            {"own": pick(self.targets, axis=1), "held_out": pick(self.forest.oob_prediction_, 1)}
        )
        return float(frame.corr(method="spearman").iloc[0, 1])


def random_configs(space, seed: int, count: int = REFERENCE_SAMPLES) -> list[dict[str, Any]]:
    """``count`` configurations drawn uniformly (log-uniformly for log keys) from ``space``."""
    rng = np.random.default_rng(seed)
    columns = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            columns[key] = [dist.choices[i] for i in rng.integers(len(dist.choices), size=count)]
            continue
        low, high = float(dist.low), float(dist.high)
        if dist.log:
            values = np.exp(rng.uniform(math.log(low), math.log(high), count))
        else:
            values = rng.uniform(low, high, count)
        columns[key] = np.round(values) if _is_int(dist) else values
    return [{key: columns[key][i] for key in space} for i in range(count)]


def _is_int(dist) -> bool:
    from optuna.distributions import IntDistribution

    return isinstance(dist, IntDistribution)


def fold_noise(task: str, path: Path = FOLDS) -> np.ndarray:
    """Per epoch: the median over recorded trials of the standard error of the fold mean of
    the log metric (std of the log fold values / sqrt(folds))."""
    table = pd.read_parquet(path)
    rows = table[table["task"] == task]
    if rows.empty:
        raise ValueError(f"no per-fold values recorded for task {task!r} in {path}")

    def standard_error(values) -> float:
        logs = np.log(np.asarray(values, dtype=float))
        logs = logs[np.isfinite(logs)]
        return float(np.std(logs, ddof=1) / math.sqrt(logs.size)) if logs.size > 1 else math.nan

    spread = rows.assign(se=rows["fold_values"].map(standard_error))
    return spread.groupby("epoch")["se"].median().sort_index().to_numpy()


RESPONDERS = ("forest", "nearest")


def make_responder(kind: str, curves, seed: int = 0):
    """The replay's answer to configurations of ``curves``' task: ``forest`` or ``nearest``."""
    if kind == "nearest":
        return NearestCurve(curves)
    if kind == "forest":
        return ForestSurrogate(curves, fold_noise(curves.task), seed=seed)
    raise ValueError(f"unknown replay mode {kind!r}: one of {', '.join(RESPONDERS)}")
