"""The leakage check's scores: how well each column alone predicts the target.

A column that predicts the target almost perfectly on its own is usually leakage (a
refund recorded after the churn, a price with tax next to the price); the check flags it
and leaves the decision to the user. Every column is ranked by its score; a column that
stands far above the rest without reaching the threshold (a follow-up time recorded after
the outcome) is listed as a suspect.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import r2_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

LEAKAGE_ROWS = 20_000  # rows sampled for the one-column models


SUSPECT_SKILL = 0.5  # halfway from chance to perfect on one column alone
SUSPECT_MARGIN = 2.0  # ... and this many times the next best column's skill
SUSPECT_MIN_ROWS = 100  # held-out rows below which one column's lead is mostly noise


@dataclass
class ColumnScore:
    """One column alone against the target, out of sample.

    ``score``: balanced accuracy (classification) or max(R^2, |Spearman|) (regression),
    what ``data.leakage_threshold`` is compared with. ``auc``: ROC-AUC of the column's
    class probabilities (one-vs-rest macro for several classes), None for regression.
    ``skill``: 0 at chance, 1 perfect (from the AUC, else from the score).
    """

    column: str
    score: float
    auc: float | None
    skill: float
    rows: int = 0  # held-out rows it was scored on


def _lookup(codes_fit, y_fit, codes_eval, task, n_codes, n_classes):
    """Predict from one categorical column: each category's class frequencies (smoothed
    towards the overall ones) or mean."""
    if task == "classification":
        counts = np.zeros((n_codes, n_classes))
        np.add.at(counts, (codes_fit, y_fit), 1)
        prior = np.bincount(y_fit, minlength=n_classes) / len(y_fit)
        proba = (counts + prior) / (counts.sum(axis=1, keepdims=True) + 1.0)
        return proba[codes_eval]
    sums = np.bincount(codes_fit, weights=y_fit, minlength=n_codes)
    seen = np.bincount(codes_fit, minlength=n_codes)
    means = np.where(seen > 0, sums / np.maximum(seen, 1), y_fit.mean())
    return means[codes_eval]


def _auc(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> float | None:
    """ROC-AUC of class probabilities: of class 1 for two classes, else one-vs-rest macro,
    as ``sklearn.metrics.roc_auc_score`` computes them (None where it is undefined), from
    the rank sums (Mann-Whitney U, ties counted half) of every class at once: sklearn's
    per-call checks cost 40 ms a column on 10 classes, a second of a sweep's start on
    64 columns (tests/data/test_leakage_scores.py checks the two agree)."""
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    if n_classes == 2:
        classes = np.array([1])
    elif len(present) < n_classes:
        return None
    else:
        classes = np.arange(n_classes)
    ranks = rankdata(proba[:, classes], axis=0)  # average ranks for ties
    positive = y_true[:, None] == classes[None, :]
    n_pos = positive.sum(axis=0)
    n_neg = len(y_true) - n_pos
    u = (ranks * positive).sum(axis=0) - n_pos * (n_pos + 1) / 2.0
    return float(np.mean(u / (n_pos * n_neg)))


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """The mean recall over the classes present in ``y_true``, as
    ``sklearn.metrics.balanced_accuracy_score`` computes it: its input checks cost 1.6 ms
    a column, 40% of a column's score (tests/data/test_leakage_scores.py checks the two
    agree)."""
    seen = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = seen > 0
    return float(np.mean(hits[present] / seen[present]))


def _column_score(column, y_true, out, task, n_classes, extra=0.0) -> ColumnScore:
    """A ColumnScore from held-out predictions (probabilities, or values)."""
    if task == "regression":
        score = max(float(r2_score(y_true, out)), extra)
        return ColumnScore(column, score, None, max(score, 0.0))
    score = _balanced_accuracy(y_true, out.argmax(axis=1), n_classes)
    auc = _auc(y_true, out, n_classes)
    chance = 1.0 / n_classes
    skill = 2.0 * (auc - 0.5) if auc is not None else (score - chance) / (1.0 - chance)
    return ColumnScore(column, score, auc, max(skill, 0.0))


def _number_score(column, x, y, fit, held, task, n_classes, seed) -> ColumnScore:
    x = x.reshape(-1, 1)
    if task == "classification":
        tree = DecisionTreeClassifier(max_depth=6, min_samples_leaf=5, random_state=seed)
        tree.fit(x[fit], y[fit])
        proba = np.zeros((len(held), n_classes))
        proba[:, tree.classes_] = tree.predict_proba(x[held])
        return _column_score(column, y[held], proba, task, n_classes)
    tree = DecisionTreeRegressor(max_depth=6, min_samples_leaf=5, random_state=seed)
    # A tree on a few dozen rows is too coarse for R^2 ~ 1; a monotone relation shows in
    # the rank correlation.
    rows = np.concatenate([fit, held])
    rho = pd.Series(x[rows, 0]).corr(pd.Series(y[rows]), method="spearman")
    rho = abs(rho) if np.isfinite(rho) else 0.0
    predicted = tree.fit(x[fit], y[fit]).predict(x[held])
    return _column_score(column, y[held], predicted, task, n_classes, rho)


def _category_score(column, series, y, fit, held, task, n_classes) -> ColumnScore:
    codes = pd.factorize(series, use_na_sentinel=True)[0] + 1  # missing: code 0
    n_codes = int(codes.max()) + 1
    out = _lookup(codes[fit], y[fit], codes[held], task, n_codes, n_classes)
    return _column_score(column, y[held], out, task, n_classes)


def single_column_scores(
    features: pd.DataFrame, y: np.ndarray, task: str, seed: int
) -> list[ColumnScore]:
    """How well each column alone predicts the target, out of sample, best first: a small
    tree for a number, a per-category lookup for a category, fit on one half of (at
    most) LEAKAGE_ROWS sampled rows and scored on the other half."""
    order = np.random.default_rng(seed).permutation(len(y))[:LEAKAGE_ROWS]
    fit, held = order[: len(order) // 2], order[len(order) // 2 :]
    if len(held) < 20:
        return []
    n_classes = int(y.max()) + 1 if task == "classification" else 0
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a sample half
        for column in features.columns:
            series = features[column]
            if pd.api.types.is_numeric_dtype(series):
                x = series.to_numpy(dtype=np.float64)
                scores.append(_number_score(column, x, y, fit, held, task, n_classes, seed))
            else:
                scores.append(_category_score(column, series, y, fit, held, task, n_classes))
    for score in scores:
        score.rows = len(held)
    return sorted(scores, key=lambda s: (-s.skill, -s.score))


def suspects(scores: list[ColumnScore]) -> list[ColumnScore]:
    """The best column when it stands out: skill >= SUSPECT_SKILL and >= SUSPECT_MARGIN
    times the next best column's. A value recorded after the outcome (a follow-up time,
    a refund) looks like this; a strong honest feature can too, so it is a question to
    the user, not a verdict. Several strong columns of similar skill (measurements of one
    thing) are none of them suspects; on fewer than SUSPECT_MIN_ROWS held-out rows no
    column is."""
    ranked = sorted(scores, key=lambda s: -s.skill)
    if not ranked or ranked[0].rows < SUSPECT_MIN_ROWS:
        return []
    best, runner_up = ranked[0], ranked[1].skill if len(ranked) > 1 else 0.0
    if best.skill >= SUSPECT_SKILL and best.skill >= SUSPECT_MARGIN * runner_up:
        return [best]
    return []
