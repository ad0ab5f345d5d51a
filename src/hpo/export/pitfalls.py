"""The report's warnings: pitfalls that the numbers show. Pure functions over the report's
sections, each returning ``{"kind", "message"}`` dicts."""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

# Thresholds, stated in every message that uses them.
ACCURACY_GAP = 0.05  # train accuracy - test accuracy
RMSE_RATIO = 1.25  # test RMSE / train RMSE
BOUNDARY_FRACTION = 0.02  # of the range (log range for log scales)
CV_STDS = 2.0  # test worse than CV by more than this many fold standard deviations...
CV_RELATIVE = 0.05  # ...and by more than this fraction of the CV value
IMBALANCE_RATIO = 3.0  # largest class / smallest class


def _warning(kind: str, message: str) -> dict[str, str]:
    return {"kind": kind, "message": message}


def train_test_gap(task: str, train: dict[str, Any], test: dict[str, Any]) -> list[dict]:
    if task == "classification":
        gap = train["accuracy"] - test["accuracy"]
        if gap > ACCURACY_GAP:
            return [
                _warning(
                    "overfitting",
                    f"train accuracy {train['accuracy']:.3f} exceeds test accuracy "
                    f"{test['accuracy']:.3f} by {gap:.3f} (> {ACCURACY_GAP}): the model "
                    "memorizes; sweep stronger regularization (dropout, weight decay).",
                )
            ]
        return []
    ratio = test["rmse"] / train["rmse"] if train["rmse"] > 0 else math.inf
    if ratio > RMSE_RATIO:
        return [
            _warning(
                "overfitting",
                f"test RMSE {test['rmse']:.4g} is {ratio:.2f}x the train RMSE "
                f"{train['rmse']:.4g} (> {RMSE_RATIO}x): the model memorizes; sweep stronger "
                "regularization (dropout, weight decay).",
            )
        ]
    return []


def _position(value: float, dist: FloatDistribution | IntDistribution) -> float | None:
    low, high = float(dist.low), float(dist.high)
    if high <= low:
        return None
    if dist.log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def boundary_values(space: dict[str, BaseDistribution], params: dict[str, Any]) -> list[dict]:
    """Best values at an edge of their range: the optimum may lie outside it."""
    found = []
    for key, dist in space.items():
        value = params.get(key)
        if value is None:
            continue
        edge = None
        if isinstance(dist, (FloatDistribution, IntDistribution)):
            position = _position(float(value), dist)
            if position is None:
                continue
            if position <= BOUNDARY_FRACTION:
                edge = f"the lower bound {dist.low:g}"
            elif position >= 1 - BOUNDARY_FRACTION:
                edge = f"the upper bound {dist.high:g}"
        elif isinstance(dist, CategoricalDistribution):
            numbers = [c for c in dist.choices if isinstance(c, (int, float))]
            ordered = len(numbers) == len(dist.choices) and len(numbers) >= 3
            if ordered and value == min(numbers):
                edge = f"the smallest choice {value}"
            elif ordered and value == max(numbers):
                edge = f"the largest choice {value}"
        if edge:
            found.append(
                _warning(
                    "search space boundary",
                    f"the best {key} = {value:g} is at {edge} of its search range; the optimum "
                    f"may lie outside it: widen the range of {key}.",
                )
            )
    return found


def heldout_below_cv(overfitting: dict[str, Any]) -> list[dict]:
    """The test score much worse than the CV score that picked the trial."""
    optimism, cv, std = overfitting["optimism"], overfitting["cv"], overfitting.get("cv_std") or 0
    if optimism is None or cv is None:
        return []
    limit = max(CV_STDS * std, CV_RELATIVE * abs(cv))
    if optimism <= limit:
        return []
    return [
        _warning(
            "test below cross-validation",
            f"test {overfitting['test_metric']} {overfitting['test']:.4g} is worse than the best "
            f"trial's CV {overfitting['metric']} {cv:.4g} by {optimism:.4g} (more than "
            f"{CV_STDS:g} fold stds and {CV_RELATIVE:.0%}): picking the best of many trials on "
            "the same folds flatters it, or the test split differs; use more folds or fewer "
            "trials, and check the test split's distribution.",
        )
    ]


def imbalance_with_accuracy(metric: str, class_counts: dict[str, int] | None) -> list[dict]:
    if metric != "val_accuracy" or not class_counts:
        return []
    largest, smallest = max(class_counts.values()), min(class_counts.values())
    if smallest and largest / smallest < IMBALANCE_RATIO:
        return []
    return [
        _warning(
            "class imbalance",
            f"classes are imbalanced (largest/smallest = {largest}/{smallest}) and the sweep "
            "optimized accuracy, which a majority-class model can score well on; sweep "
            "metric=val_f1_macro mode=max or val_loss instead.",
        )
    ]


def export_checks(onnx_check: dict[str, Any], preprocessing_check: dict[str, Any]) -> list[dict]:
    found = []
    if not onnx_check.get("passed"):
        found.append(
            _warning(
                "onnx mismatch",
                f"the ONNX model's outputs differ from torch's by up to "
                f"{onnx_check.get('max_abs_diff')} ({onnx_check.get('tolerance')}).",
            )
        )
    if not preprocessing_check.get("passed"):
        found.append(
            _warning(
                "preprocessing mismatch",
                "the exported preprocessing does not reproduce the features the model was "
                f"trained on (max difference {preprocessing_check.get('max_abs_diff')}).",
            )
        )
    return found
