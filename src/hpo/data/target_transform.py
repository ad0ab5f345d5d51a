"""A regression target's transform (``data.target_transform``): what the model learns is
``standardize(transform(y))``, and every metric, baseline and exported prediction is in
the target's own units again.

Settings: ``none`` (standardize only), ``log`` (a strictly positive target), ``log1p`` (a
target >= 0, zeros allowed), ``auto`` (the default). The rule of ``auto``, on the
non-test rows' target (the test split takes no part), like ``data.task``:

* ``log`` if every value is > 0, the sample skewness exceeds ``SKEW_THRESHOLD`` (1.0: a
  long right tail, prices, incomes, counts), and the log's skewness is smaller in
  magnitude (it made the target more symmetric); ``log1p`` the same way for a target
  >= 0 holding zeros;
* ``none`` otherwise (and always for classification).

The choice is made once, so every fold, the refit and the baselines learn the same target;
the standardization after it is fitted on each fold's train part, as before. The inverse
(``exp``, ``exp - 1``) is written with tensor methods so that it traces into the ONNX graph
(Exp, Sub): `hpo predict` returns values in the target's units.

numpy only at import (the exported model's metrics import it; torch tensors are handled
through their own methods).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hpo.errors import ConfigError

TARGET_TRANSFORMS = ("auto", "none", "log", "log1p")
SKEW_THRESHOLD = 1.0


@dataclass
class TargetTransform:
    """The chosen transform and why (what data_quality.json, model.json and the report
    record)."""

    name: str = "none"  # none | log | log1p
    setting: str = "auto"
    reason: str = ""
    skewness: float | None = None  # of the non-test rows' target
    skewness_after: float | None = None  # of the transformed target

    def record(self) -> dict[str, Any]:
        return asdict(self)


def check_setting(value: Any) -> str:
    if value not in TARGET_TRANSFORMS:
        raise ConfigError(
            f"config key `data.target_transform`: must be one of {', '.join(TARGET_TRANSFORMS)}, "
            f"got {value!r}."
        )
    return str(value)


def skewness(values: np.ndarray) -> float:
    """Fisher-Pearson sample skewness (scipy.stats.skew with bias=True); 0 for a constant."""
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean()
    spread = float(np.mean(centred**2))
    return float(np.mean(centred**3) / spread**1.5) if spread > 0 else 0.0


def forward(name: str, values: np.ndarray) -> np.ndarray:
    """``transform(y)``, in float64. Values outside the transform's domain (a test row
    below every training value) are floored at its edge instead of becoming NaN."""
    values = np.asarray(values, dtype=np.float64)
    if name == "log":
        return np.log(np.maximum(values, np.finfo(np.float64).tiny))
    if name == "log1p":
        return np.log1p(np.maximum(values, 0.0))
    return values


def inverse(name: str, values: Any) -> Any:
    """The target's units from transformed values: a numpy array or a torch tensor (whose
    ``exp`` traces into ONNX as Exp)."""
    if name == "none":
        return values
    grown = values.exp() if hasattr(values, "exp") else np.exp(values)
    return grown - 1.0 if name == "log1p" else grown


def choose(y_rest: np.ndarray, setting: str, task: str, target: str) -> TargetTransform:
    """The transform for ``data.target_transform=setting``, decided on the non-test rows'
    target ``y_rest`` (see the module docstring for ``auto``'s rule).

    Raises:
        ConfigError: ``log``/``log1p`` asked for a target outside its domain, or for
            classification.
    """
    setting = check_setting(setting)
    if task != "regression":
        if setting in ("log", "log1p"):
            raise ConfigError(
                f"config key `data.target_transform`: {setting} applies to a regression "
                f"target, but `{target}` is a classification target; leave it at auto."
            )
        return TargetTransform("none", setting, "classification: the target is not transformed")
    low, skew = float(np.min(y_rest)), skewness(y_rest)
    candidate = "log" if low > 0 else "log1p"
    if setting == "none":
        return TargetTransform("none", setting, "data.target_transform=none", skew)
    if setting in ("log", "log1p"):
        if (setting == "log" and low <= 0) or (setting == "log1p" and low < 0):
            need = "> 0" if setting == "log" else ">= 0"
            fix = "log1p (a target >= 0) or none" if low >= 0 else "none"
            raise ConfigError(
                f"config key `data.target_transform`: {setting} needs every target value "
                f"{need}, but `{target}` holds {low:g} in the non-test rows; use {fix}."
            )
        after = skewness(forward(setting, y_rest))
        return TargetTransform(setting, setting, f"data.target_transform={setting}", skew, after)
    if low < 0 or skew <= SKEW_THRESHOLD:
        why = (
            "it holds negative values" if low < 0 else f"skewness {skew:.2f} <= {SKEW_THRESHOLD:g}"
        )
        return TargetTransform("none", setting, f"auto: not transformed ({why})", skew)
    after = skewness(forward(candidate, y_rest))
    if abs(after) >= abs(skew):
        return TargetTransform(
            "none",
            setting,
            f"auto: not transformed ({candidate} would leave skewness {after:.2f}, no better "
            f"than {skew:.2f})",
            skew,
            after,
        )
    positive = "every value > 0" if candidate == "log" else "every value >= 0"
    return TargetTransform(
        candidate,
        setting,
        f"auto: {candidate}, the target is right-skewed (skewness {skew:.2f} > "
        f"{SKEW_THRESHOLD:g}, {positive}; {after:.2f} after the transform)",
        skew,
        after,
    )
