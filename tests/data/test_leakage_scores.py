"""The leakage check's one-column AUC and balanced accuracy agree with scikit-learn's
roc_auc_score and balanced_accuracy_score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from hpo.data.leakage import _auc, _balanced_accuracy


@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_scikit_learn(n_classes, ties):
    rng = np.random.default_rng(n_classes + 10 * ties)
    y = rng.integers(0, n_classes, 300)
    proba = rng.dirichlet(np.ones(n_classes), 300) + 0.3 * np.eye(n_classes)[y]
    if ties:  # a tree's or a lookup's probabilities: a few distinct rows, many ties
        proba = np.round(proba, 1)
    proba = proba / proba.sum(axis=1, keepdims=True)
    if n_classes == 2:
        expected = roc_auc_score(y, proba[:, 1])
    else:
        expected = roc_auc_score(y, proba, multi_class="ovr", labels=list(range(n_classes)))
    assert _auc(y, proba, n_classes) == pytest.approx(expected, abs=1e-12)


def test_auc_is_none_where_scikit_learn_leaves_it_undefined():
    proba = np.full((6, 3), 1 / 3)
    assert _auc(np.zeros(6, dtype=int), proba, 3) is None  # one class only
    assert _auc(np.array([0, 1, 0, 1, 0, 1]), proba, 3) is None  # a class absent


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_balanced_accuracy_matches_scikit_learn(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 300)
    predicted = np.where(rng.random(300) < 0.6, y, rng.integers(0, n_classes, 300))
    expected = balanced_accuracy_score(y, predicted)
    assert _balanced_accuracy(y, predicted, n_classes) == pytest.approx(expected, abs=1e-12)


def test_balanced_accuracy_leaves_out_classes_absent_from_the_truth_as_scikit_learn():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])  # class 2 never true, but predicted
    predicted = np.array([0, 2, 0, 1, 2, 1, 1, 1])
    with pytest.warns(UserWarning):  # scikit-learn's "y_pred contains classes not in y_true"
        expected = balanced_accuracy_score(y, predicted)
    assert _balanced_accuracy(y, predicted, 3) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx((2 / 4 + 3 / 4) / 2)
