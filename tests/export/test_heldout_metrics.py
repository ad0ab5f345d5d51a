"""Test-split metrics: the macro averages cover the classes present."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.export.metrics import classification_metrics

CLASSES = ["a", "b", "c"]


def _one_hot(indices: list[int]) -> np.ndarray:
    proba = np.full((len(indices), len(CLASSES)), 0.1)
    proba[np.arange(len(indices)), indices] = 0.8
    return proba


def test_rows_of_one_class_all_right_score_one_and_name_the_absent_classes():
    metrics = classification_metrics(np.zeros(5, dtype=int), _one_hot([0] * 5), CLASSES)
    assert metrics["accuracy"] == 1.0
    assert metrics["f1_macro"] == metrics["precision_macro"] == metrics["recall_macro"] == 1.0
    assert metrics["macro_classes"] == 1
    assert metrics["absent_classes"] == ["b", "c"]
    assert metrics["roc_auc"] is None  # one-vs-rest needs every class


def test_a_predicted_class_without_true_rows_counts_against_the_macro():
    # truth: a a b b; predicted: a c b b. Class c is predicted once and never true.
    metrics = classification_metrics(np.array([0, 0, 1, 1]), _one_hot([0, 2, 1, 1]), CLASSES)
    assert metrics["macro_classes"] == 3
    assert metrics["absent_classes"] == ["c"]
    # per class F1: a 2/3, b 1, c 0
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_every_class_present_is_the_usual_macro():
    y = np.array([0, 1, 2, 0, 1, 2])
    metrics = classification_metrics(y, _one_hot([0, 1, 2, 0, 2, 2]), CLASSES)
    assert metrics["macro_classes"] == 3 and metrics["absent_classes"] == []
    assert metrics["recall_macro"] == pytest.approx((1 + 0.5 + 1) / 3)
