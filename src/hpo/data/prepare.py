"""From the configured source to the fold arrays every trial trains on.

Order matters for leakage: load -> clean (row-wise, label-free) -> cut the test split ->
build folds on the rest -> fit preprocessing on each fold's train part only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hpo.data.preprocessing import build_preprocessor, to_float32
from hpo.data.sources import Table, load_table
from hpo.data.splits import holdout_split, infer_task, make_folds
from hpo.errors import DataError


@dataclass
class FoldArrays:
    """One fold's preprocessed arrays. Regression targets are standardized with the
    train part's mean and std (``y_mean``, ``y_std``); metrics undo it."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    train_rows: np.ndarray  # positions in the non-test rows
    val_rows: np.ndarray
    y_mean: float = 0.0
    y_std: float = 1.0


@dataclass
class TrialData:
    """What every trial needs, put into Ray's object store once."""

    folds: list[FoldArrays]
    input_dim: int
    output_dim: int
    task: str
    classes: list | None


@dataclass
class PreparedData:
    table: Table
    task: str
    classes: list | None
    y: np.ndarray  # encoded target for every row of the table
    train_idx: np.ndarray  # non-test rows (positions in the table)
    test_idx: np.ndarray
    groups: np.ndarray | None
    trial_data: TrialData
    notes: list[str] = field(default_factory=list)

    @property
    def features(self) -> pd.DataFrame:
        return self.table.features


def encode_target(target: pd.Series, task: str) -> tuple[np.ndarray, list | None]:
    """Class indices (classes sorted) for classification, float32 values for regression."""
    if task == "classification":
        classes = sorted(target.unique().tolist(), key=lambda v: (str(type(v)), v))
        lookup = {c: i for i, c in enumerate(classes)}
        return target.map(lookup).to_numpy(dtype=np.int64), classes
    return target.to_numpy(dtype=np.float32), None


def fit_fold(
    features: pd.DataFrame,
    y: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    task: str,
    data_cfg,
) -> FoldArrays:
    """Fit preprocessing on ``train_rows`` alone and transform both parts."""
    pre = build_preprocessor(features.iloc[train_rows], data_cfg)
    X_train = to_float32(pre.fit_transform(features.iloc[train_rows]))
    X_val = to_float32(pre.transform(features.iloc[val_rows]))
    y_train, y_val = y[train_rows], y[val_rows]
    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean = float(y_train.mean())
        y_std = float(y_train.std()) or 1.0
        y_train = ((y_train - y_mean) / y_std).astype(np.float32)
        y_val = ((y_val - y_mean) / y_std).astype(np.float32)
    return FoldArrays(X_train, y_train, X_val, y_val, train_rows, val_rows, y_mean, y_std)


def prepare_data(cfg, table: Table | None = None) -> PreparedData:
    """Load (unless given), split and preprocess per fold, as the config says."""
    table = table if table is not None else load_table(cfg.data)
    target = table.target
    missing = target.isna()
    notes: list[str] = []
    if missing.all():
        raise DataError(
            f"target column `{target.name}` has no values; choose another with data.target=COLUMN."
        )
    if missing.any():
        notes.append(f"dropped {int(missing.sum())} rows whose target is missing")
        keep = ~missing.to_numpy()
        table = Table(
            table.features.loc[keep].reset_index(drop=True),
            target.loc[keep].reset_index(drop=True),
            table.name,
        )
        target = table.target
    if table.features.shape[1] == 0:
        raise DataError("no feature columns are left; check data.columns / data.drop_columns.")
    task = infer_task(target, cfg.data.task)
    y, classes = encode_target(target, task)
    if task == "classification" and len(classes) < 2:
        raise DataError(
            f"target column `{target.name}` holds one class only ({classes[0]!r}); a "
            "classifier needs at least two. Check data.target."
        )
    groups = None
    if cfg.data.get("group_column"):
        groups = table.features[cfg.data.group_column].to_numpy()
    _check_sizes(y, task, cfg, classes)
    train_idx, test_idx = holdout_split(y, cfg.test_size, task, cfg.seed, groups)
    features = table.features
    if groups is not None:
        features = features.drop(columns=[cfg.data.group_column])
    rest = features.iloc[train_idx].reset_index(drop=True)
    y_rest = y[train_idx]
    fold_indices = make_folds(
        y_rest,
        cfg.cv.strategy,
        cfg.cv.folds,
        task,
        cfg.cv.shuffle,
        cfg.seed,
        groups[train_idx] if groups is not None else None,
    )
    folds = [fit_fold(rest, y_rest, tr, va, task, cfg.data) for tr, va in fold_indices]
    output_dim = len(classes) if task == "classification" else 1
    trial_data = TrialData(folds, folds[0].X_train.shape[1], output_dim, task, classes)
    return PreparedData(
        table=Table(features, table.target, table.name),
        task=task,
        classes=classes,
        y=y,
        train_idx=train_idx,
        test_idx=test_idx,
        groups=groups,
        trial_data=trial_data,
        notes=notes,
    )


def _check_sizes(y: np.ndarray, task: str, cfg, classes) -> None:
    n = len(y)
    n_test = int(np.ceil(n * cfg.test_size))
    needed = cfg.cv.folds * 2 + n_test
    if n < needed:
        raise DataError(
            f"{n} rows are too few for test_size={cfg.test_size} and cv.folds={cfg.cv.folds} "
            f"(need at least {needed}); lower cv.folds or test_size, or add rows."
        )
    if task == "classification":
        counts = np.bincount(y, minlength=len(classes))
        smallest = int(counts.min())
        if smallest < cfg.cv.folds + 1:
            rare = classes[int(counts.argmin())]
            raise DataError(
                f"class {rare!r} has {smallest} rows, too few for a stratified test split and "
                f"cv.folds={cfg.cv.folds}; lower cv.folds, merge rare classes or add rows."
            )
