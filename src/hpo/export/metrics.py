"""Test-split metrics from scikit-learn, computed from a prediction table.

The export computes the report's test metrics with ``evaluate_predictions`` on what
``ExportedModel.predict`` returns; `hpo predict` output run through the same function
gives the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from hpo.data.target_transform import forward
from hpo.errors import DataError
from hpo.export.predictor import PREDICTION_COLUMN, proba_column
from hpo.export.transform import category_key

# The sweep's metric -> the test metric it estimates. val_loss is the training loss on
# held-out rows: cross-entropy (= log loss) or MSE of standardized targets (of the
# transformed target, when data.target_transform chose one).
TEST_NAME = {"val_loss": "loss"}


def heldout_metric_name(metric: str) -> str:
    return TEST_NAME.get(metric, metric.removeprefix("val_"))


def class_indices(labels: pd.Series | np.ndarray, classes: list) -> np.ndarray:
    lookup = {category_key(c): i for i, c in enumerate(classes)}
    keys = [category_key(v) for v in np.asarray(labels, dtype=object)]
    unknown = sorted({k for k in keys if k not in lookup})
    if unknown:
        raise DataError(
            f"the target column holds labels the model never saw: {unknown[:5]}; "
            f"known classes: {[category_key(c) for c in classes]}."
        )
    return np.asarray([lookup[k] for k in keys], dtype=np.int64)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, ROC-AUC, log loss, confusion.

    The macro averages run over the classes present: those with a true row or a
    prediction. A class with neither has no precision or recall to speak of (counting it
    as 0 made 5 correct rows of one class score F1 0.5); ``absent_classes`` names the
    classes without a true row, ``macro_classes`` how many classes the averages cover.
    """
    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    loss = float(log_loss(y_true, proba, labels=labels))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(macro[0]),
        "recall_macro": float(macro[1]),
        "f1_macro": float(macro[2]),
        "roc_auc": _roc_auc(y_true, proba, labels),
        "log_loss": loss,
        "loss": loss,
        "per_class": {
            category_key(c): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "macro_classes": len(present),
        "absent_classes": [category_key(c) for i, c in enumerate(classes) if support[i] == 0],
        "rows": int(len(y_true)),
    }


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float | None:
    """Binary ROC-AUC, or one-vs-rest macro ROC-AUC; None if a class is absent."""
    if len(np.unique(y_true)) < len(labels):
        return None
    if len(labels) == 2:
        return float(roc_auc_score(y_true, proba[:, 1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels))


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, y_scale: float, target_transform: str = "none"
) -> dict[str, Any]:
    """RMSE, MAE, R2 in the target's units; ``loss`` as val_loss is: the MSE of the
    transformed target (hpo.data.target_transform) standardized by ``y_scale``, the
    transformed non-test target's std."""
    mse = float(
        mean_squared_error(forward(target_transform, y_true), forward(target_transform, y_pred))
    )
    return {
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan,
        "loss": mse / (y_scale**2),
        "rows": int(len(y_true)),
    }


def evaluate_predictions(
    manifest: dict[str, Any], target: pd.Series | np.ndarray, predictions: pd.DataFrame
) -> dict[str, Any]:
    """Test metrics of a prediction table against the true target values."""
    if manifest["task"] == "classification":
        classes = manifest["classes"]
        proba = predictions[[proba_column(c) for c in classes]].to_numpy(dtype=np.float64)
        return classification_metrics(class_indices(target, classes), proba, classes)
    y_true = np.asarray(target, dtype=np.float64)
    y_pred = predictions[PREDICTION_COLUMN].to_numpy(dtype=np.float64)
    transform = (manifest.get("target_transform") or {}).get("name", "none")
    return regression_metrics(y_true, y_pred, float(manifest["target_scale"]), transform)
