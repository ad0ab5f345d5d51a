"""Task inference, the held-out test split and the CV folds (sklearn splitters)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedKFold,
    train_test_split,
)

from hpo.errors import ConfigError, DataError

MAX_CLASSES_FOR_NUMERIC_TARGET = 20


def infer_task(target: pd.Series, declared: str = "auto") -> str:
    """``classification`` for non-numeric, boolean or few-valued integer targets."""
    if declared in ("classification", "regression"):
        if declared == "regression" and not pd.api.types.is_numeric_dtype(target):
            raise DataError(
                f"data.task=regression needs a numeric target, but `{target.name}` holds "
                f"{target.dtype} values such as {target.dropna().iloc[0]!r}; use "
                "data.task=classification or fix the column."
            )
        return declared
    if declared != "auto":
        raise ConfigError(
            f"config key `data.task`: must be auto, classification or regression, got {declared!r}."
        )
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.dropna()
    integral = np.allclose(values, np.round(values))
    if integral and values.nunique() <= MAX_CLASSES_FOR_NUMERIC_TARGET:
        return "classification"
    return "regression"


def holdout_split(
    y: np.ndarray,
    test_size: float,
    task: str,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the test split once, before anything is fit. Returns sorted row indices."""
    index = np.arange(len(y))
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train_idx, test_idx = next(splitter.split(index, y, groups))
    else:
        stratify = y if task == "classification" else None
        train_idx, test_idx = train_test_split(
            index, test_size=test_size, random_state=seed, stratify=stratify
        )
    return np.sort(train_idx), np.sort(test_idx)


def make_splitter(strategy: str, folds: int, task: str, shuffle: bool, seed: int):
    """A scikit-learn splitter for ``cv.strategy`` (``auto`` picks by task)."""
    if strategy == "auto":
        strategy = "stratified" if task == "classification" else "kfold"
    if strategy == "stratified":
        if task != "classification":
            raise ConfigError(
                "config key `cv.strategy`: stratified folds need a classification target; "
                "use cv.strategy=kfold for regression."
            )
        return StratifiedKFold(folds, shuffle=shuffle, random_state=seed if shuffle else None)
    if strategy == "kfold":
        return KFold(folds, shuffle=shuffle, random_state=seed if shuffle else None)
    if strategy == "group":
        return GroupKFold(folds)
    raise ConfigError(f"config key `cv.strategy`: unknown strategy {strategy!r}.")


def make_folds(
    y: np.ndarray,
    strategy: str,
    folds: int,
    task: str,
    shuffle: bool,
    seed: int,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, val_idx)`` pairs over the rows of ``y`` (positions, not labels)."""
    splitter = make_splitter(strategy, folds, task, shuffle, seed)
    if strategy == "group" and groups is None:
        raise ConfigError(
            "config key `data.group_column`: cv.strategy=group needs data.group_column=COLUMN."
        )
    placeholder = np.zeros(len(y))
    return [(np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(placeholder, y, groups)]


def group_labels(raw: pd.Series, cfg) -> np.ndarray:
    """The group of each row, from ``data.group_column``."""
    column = cfg.data.group_column
    if raw.isna().any():
        raise DataError(
            f"config key `data.group_column`: `{column}` is empty in {int(raw.isna().sum())} "
            "rows; every row needs a group (fill them, or drop those rows)."
        )
    if cfg.cv.strategy not in ("auto", "group"):
        raise ConfigError(
            f"config key `cv.strategy`: {cfg.cv.strategy} folds would split groups of "
            f"`{column}` across folds; use cv.strategy=group (or auto) with data.group_column."
        )
    return raw.to_numpy()


def check_sizes(y: np.ndarray, task: str, cfg, classes, groups) -> None:
    """Enough rows (and groups, and rows per class) for the test split and the folds?"""
    n = len(y)
    n_test = int(np.ceil(n * cfg.test_size))
    needed = cfg.cv.folds * 2 + n_test
    if n < needed:
        raise DataError(
            f"{n} rows are too few for test_size={cfg.test_size} and cv.folds={cfg.cv.folds} "
            f"(need at least {needed}); lower cv.folds or test_size, or add rows."
        )
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < cfg.cv.folds + 1:
            raise DataError(
                f"config key `data.group_column`: {n_groups} groups are too few for a test "
                f"split and cv.folds={cfg.cv.folds} (need at least {cfg.cv.folds + 1}); lower "
                "cv.folds or use a coarser grouping."
            )
        return  # groups, not classes, decide the split
    if task == "classification":
        counts = np.bincount(y, minlength=len(classes))
        smallest = int(counts.min())
        if smallest < cfg.cv.folds + 1:
            rare = classes[int(counts.argmin())]
            raise DataError(
                f"class {rare!r} has {smallest} rows, too few for a stratified test split and "
                f"cv.folds={cfg.cv.folds}; lower cv.folds, merge rare classes or add rows."
            )
