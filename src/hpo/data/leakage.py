"""The leakage check's scores: how well each column alone predicts the target.

A column that predicts the target almost perfectly on its own is usually leakage (a
refund recorded after the churn, a price with tax next to the price); the check flags it
and leaves the decision to the user.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

LEAKAGE_ROWS = 20_000  # rows sampled for the one-column models


def _lookup_predict(codes_fit, y_fit, codes_eval, task, n_codes, n_classes):
    """Predict from one categorical column: each category's majority class / mean."""
    if task == "classification":
        counts = np.zeros((n_codes, n_classes))
        np.add.at(counts, (codes_fit, y_fit), 1)
        best = counts.argmax(axis=1)
        best[counts.sum(axis=1) == 0] = np.bincount(y_fit, minlength=n_classes).argmax()
        return best[codes_eval]
    sums = np.bincount(codes_fit, weights=y_fit, minlength=n_codes)
    seen = np.bincount(codes_fit, minlength=n_codes)
    means = np.where(seen > 0, sums / np.maximum(seen, 1), y_fit.mean())
    return means[codes_eval]


def _score(y_true: np.ndarray, pred: np.ndarray, task: str) -> float:
    if task == "classification":
        return float(balanced_accuracy_score(y_true, pred))
    return float(r2_score(y_true, pred))


def _number_score(x, y, fit, held, task, seed) -> float:
    x = x.reshape(-1, 1)
    tree_cls = DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor
    tree = tree_cls(max_depth=6, min_samples_leaf=5, random_state=seed)
    score = _score(y[held], tree.fit(x[fit], y[fit]).predict(x[held]), task)
    if task == "regression":
        # A tree on a few dozen rows is too coarse for R^2 ~ 1; a monotone relation
        # shows in the rank correlation.
        rows = np.concatenate([fit, held])
        rho = pd.Series(x[rows, 0]).corr(pd.Series(y[rows]), method="spearman")
        score = max(score, abs(rho) if np.isfinite(rho) else 0.0)
    return score


def _category_score(series, y, fit, held, task) -> float:
    codes = pd.factorize(series, use_na_sentinel=True)[0] + 1  # missing: code 0
    n_codes = int(codes.max()) + 1
    n_classes = int(y.max()) + 1 if task == "classification" else 0
    pred = _lookup_predict(codes[fit], y[fit], codes[held], task, n_codes, n_classes)
    return _score(y[held], pred, task)


def single_column_scores(
    features: pd.DataFrame, y: np.ndarray, task: str, seed: int
) -> dict[str, float]:
    """How well each column alone predicts the target, out of sample: a small tree for a
    number, a per-category lookup for a category; balanced accuracy or R^2 on a held-out
    half of (at most) LEAKAGE_ROWS sampled rows. For a regression target a number's
    |Spearman correlation| counts too, when higher."""
    order = np.random.default_rng(seed).permutation(len(y))[:LEAKAGE_ROWS]
    fit, held = order[: len(order) // 2], order[len(order) // 2 :]
    if len(held) < 20:
        return {}
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a sample half
        for column in features.columns:
            series = features[column]
            if pd.api.types.is_numeric_dtype(series):
                x = series.to_numpy(dtype=np.float64)
                scores[column] = _number_score(x, y, fit, held, task, seed)
            else:
                scores[column] = _category_score(series, y, fit, held, task)
    return scores
