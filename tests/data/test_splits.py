"""Fold invariants (sklearn-style): no overlap, every non-test row validated once,
test rows never in a fold, stratification holds; preprocessing sees train rows only."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.data import prepare_data
from hpo.data.splits import holdout_split, infer_task, make_folds


@pytest.mark.parametrize("data", ["digits", "wine", "diabetes"])
def test_folds_partition_the_non_test_rows(small_cfg, data):
    cfg = small_cfg(f"data={data}", "cv.folds=4")
    prepared = prepare_data(cfg)
    n_rest = len(prepared.train_idx)
    assert set(prepared.train_idx).isdisjoint(prepared.test_idx)
    assert len(prepared.train_idx) + len(prepared.test_idx) == len(prepared.y)
    seen = np.zeros(n_rest, dtype=int)
    for fold in prepared.trial_data.folds:
        assert set(fold.train_rows).isdisjoint(fold.val_rows)
        assert len(fold.train_rows) + len(fold.val_rows) == n_rest
        seen[fold.val_rows] += 1
    assert (seen == 1).all()  # every non-test row is validated exactly once


def test_test_rows_never_reach_a_fold(small_cfg):
    cfg = small_cfg("data=wine")
    prepared = prepare_data(cfg)
    test_features = prepared.features.iloc[prepared.test_idx].to_numpy()
    rest_features = prepared.features.iloc[prepared.train_idx].to_numpy()
    for fold in prepared.trial_data.folds:
        rows = np.concatenate([fold.train_rows, fold.val_rows])
        # fold rows index the non-test rows; map back and compare to the test rows
        fold_rows = rest_features[rows]
        for test_row in test_features[:10]:
            assert not (fold_rows == test_row).all(axis=1).any()


def test_stratification_holds_in_test_split_and_folds(small_cfg):
    cfg = small_cfg("data=digits", "cv.folds=5")
    prepared = prepare_data(cfg)
    overall = np.bincount(prepared.y) / len(prepared.y)
    test = np.bincount(prepared.y[prepared.test_idx], minlength=10) / len(prepared.test_idx)
    assert np.abs(test - overall).max() < 0.02
    y_rest = prepared.y[prepared.train_idx]
    for fold in prepared.trial_data.folds:
        share = np.bincount(y_rest[fold.val_rows], minlength=10) / len(fold.val_rows)
        assert np.abs(share - overall).max() < 0.02


def test_scaler_is_fit_on_each_folds_train_part_only(small_cfg):
    cfg = small_cfg("data=wine")
    prepared = prepare_data(cfg)
    rest = prepared.features.iloc[prepared.train_idx].to_numpy(dtype=np.float64)
    for fold in prepared.trial_data.folds:
        # standardized with the train part's statistics: train mean 0, std 1 ...
        assert np.allclose(fold.X_train.mean(axis=0), 0.0, atol=1e-4)
        assert np.allclose(fold.X_train.std(axis=0), 1.0, atol=1e-3)
        # ... and the validation part transformed with those same statistics
        train = rest[fold.train_rows]
        expected_val = (rest[fold.val_rows] - train.mean(axis=0)) / train.std(axis=0)
        assert np.allclose(fold.X_val, expected_val, atol=1e-4)


def test_regression_folds_are_plain_kfold_and_targets_standardized_per_fold(small_cfg):
    cfg = small_cfg("data=diabetes")
    prepared = prepare_data(cfg)
    assert prepared.task == "regression"
    for fold in prepared.trial_data.folds:
        assert abs(float(fold.y_train.mean())) < 1e-4
        raw_train = prepared.y[prepared.train_idx][fold.train_rows]
        assert fold.y_mean == pytest.approx(float(raw_train.mean()), rel=1e-5)


def test_same_seed_gives_same_splits_and_other_seed_differs():
    y = np.repeat(np.arange(3), 40)
    a = holdout_split(y, 0.2, "classification", seed=1)
    b = holdout_split(y, 0.2, "classification", seed=1)
    c = holdout_split(y, 0.2, "classification", seed=2)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    folds = make_folds(y[a[0]], "auto", 4, "classification", True, 0)
    assert len(folds) == 4


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a"], "classification"),
        ([0, 1, 1, 0], "classification"),
        ([0.5, 1.25, 3.0, 9.75], "regression"),
        (list(range(100)), "regression"),
    ],
)
def test_task_is_inferred_from_the_target(values, expected):
    import pandas as pd

    assert infer_task(pd.Series(values, name="y")) == expected
