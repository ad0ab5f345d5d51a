"""Task metrics from torchmetrics' functional API."""

from __future__ import annotations

import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

CLASSIFICATION_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def task_metrics(
    preds: torch.Tensor,
    target: torch.Tensor,
    task: str,
    num_classes: int,
    y_mean: float = 0.0,
    y_std: float = 1.0,
) -> dict[str, float]:
    """Metrics of one fold's validation outputs (regression in the target's own units)."""
    preds = preds.detach().float()
    if task == "classification":
        kwargs = {"num_classes": num_classes, "validate_args": False}
        return {
            "accuracy": float(multiclass_accuracy(preds, target, average="micro", **kwargs)),
            "precision_macro": float(
                multiclass_precision(preds, target, average="macro", **kwargs)
            ),
            "recall_macro": float(multiclass_recall(preds, target, average="macro", **kwargs)),
            "f1_macro": float(multiclass_f1_score(preds, target, average="macro", **kwargs)),
        }
    preds = preds.reshape(-1) * y_std + y_mean
    target = target.float().reshape(-1) * y_std + y_mean
    return {
        "rmse": float(mean_squared_error(preds, target, squared=False)),
        "mae": float(mean_absolute_error(preds, target)),
        "r2": float(r2_score(preds, target)) if target.numel() > 1 else float("nan"),
    }
