"""The folds' task metrics, with torchmetrics' definitions.

They are computed here from torchmetrics' formulas rather than by calling it: importing
torchmetrics costs a Ray worker about 4 s on 2 cores (it imports transformers and scipy
when they are installed), and four calls per fold cost more than an epoch on small data.
tests/train/test_metrics.py checks every value against torchmetrics itself.
"""

from __future__ import annotations

import torch

from hpo.data.target_transform import inverse

CLASSIFICATION_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def fold_task_metrics(
    preds: list[torch.Tensor],
    targets: list[torch.Tensor],
    task: str,
    num_classes: int,
    y_means: list[float],
    y_stds: list[float],
    target_transforms: list[str] | None = None,
) -> list[dict[str, float]]:
    """The task's metrics of several folds' validation outputs, one dict per fold
    (regression in the target's own units: the standardization and ``target_transform``
    undone).

    Classification metrics of all folds come from one confusion count (the formulas of
    torchmetrics' multiclass metrics, macro averages skipping classes that are absent
    from both targets and predictions): four torchmetrics calls per fold would cost more
    than a training epoch on small data. Regression metrics are torchmetrics' formulas
    too (``regression_metrics``), so that a trial never imports torchmetrics (about 4 s
    of a Ray worker's start); tests/train/test_metrics.py checks both against it."""
    if task != "classification":
        transforms = target_transforms or ["none"] * len(preds)
        return [
            regression_metrics(
                inverse(name, p.detach().float().reshape(-1) * s + m),
                inverse(name, t.float().reshape(-1) * s + m),
            )
            for p, t, m, s, name in zip(preds, targets, y_means, y_stds, transforms)
        ]
    folds, classes = len(preds), num_classes
    codes = torch.cat(
        [
            (fold * classes + t) * classes + p.detach().argmax(dim=-1)
            for fold, (p, t) in enumerate(zip(preds, targets))
        ]
    )
    confusion = torch.bincount(codes, minlength=folds * classes * classes)
    confusion = confusion.view(folds, classes, classes).double()  # [fold, target, predicted]
    tp = confusion.diagonal(dim1=1, dim2=2)
    fp = confusion.sum(dim=1) - tp
    fn = confusion.sum(dim=2) - tp
    present = ((tp + fp + fn) > 0).double()

    def macro(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        per_class = torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))
        weight = present.sum(dim=1)
        return torch.where(weight > 0, (per_class * present).sum(dim=1) / weight.clamp(min=1), 0.0)

    columns = {
        "accuracy": tp.sum(dim=1) / confusion.sum(dim=(1, 2)).clamp(min=1),
        "precision_macro": macro(tp, tp + fp),
        "recall_macro": macro(tp, tp + fn),
        "f1_macro": macro(2 * tp, 2 * tp + fp + fn),
    }
    values = {name: column.tolist() for name, column in columns.items()}
    return [{name: values[name][fold] for name in columns} for fold in range(folds)]


def regression_metrics(preds: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """rmse, mae and r2 as torchmetrics computes them (r2 of a constant target: 1 when
    every prediction is exact, else 0; NaN for one row)."""
    error = (preds.double() - target.double()).reshape(-1)
    target = target.double().reshape(-1)
    squared = float((error**2).sum())
    residual = float(((target - target.mean()) ** 2).sum())
    if target.numel() < 2:
        r2 = float("nan")
    elif residual == 0:
        r2 = 1.0 if squared == 0 else 0.0
    else:
        r2 = 1.0 - squared / residual
    return {
        "rmse": (squared / error.numel()) ** 0.5,
        "mae": float(error.abs().mean()),
        "r2": r2,
    }
