"""The fold arrays every trial trains on (built by hpo.data.prepare).

Their own module, with numpy only: a Ray worker unpickles them and the trial code names
them, and neither must import scikit-learn (hpo.data.prepare's cleaning,
quality checks and splitters) on a trial's start path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FoldArrays:
    """One fold's preprocessed arrays. Regression targets are transformed
    (``target_transform``, hpo.data.target_transform) and standardized with the train
    part's mean and std of the transformed values (``y_mean``, ``y_std``); metrics undo
    both."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    train_rows: np.ndarray  # positions in the non-test rows
    val_rows: np.ndarray
    y_mean: float = 0.0
    y_std: float = 1.0
    target_transform: str = "none"  # none | log | log1p


@dataclass
class TrialData:
    """What every trial needs, put into Ray's object store once."""

    folds: list[FoldArrays]
    input_dim: int
    output_dim: int
    task: str
    classes: list | None
    feature_names: list[str] = field(default_factory=list)  # the columns of X
