"""The folds' metrics computed together equal torchmetrics' per fold."""

from __future__ import annotations

import pytest
import torch

from hpo.data.target_transform import inverse
from hpo.train.metrics import fold_task_metrics


def task_metrics(
    preds: torch.Tensor,
    target: torch.Tensor,
    task: str,
    num_classes: int,
    y_mean: float = 0.0,
    y_std: float = 1.0,
    target_transform: str = "none",
) -> dict[str, float]:
    """torchmetrics' own values for one fold's validation outputs: the reference
    (regression in the target's own units: the standardization and ``target_transform``
    undone)."""
    preds = preds.detach().float()
    if task == "classification":
        from torchmetrics.functional.classification import (
            multiclass_accuracy,
            multiclass_f1_score,
            multiclass_precision,
            multiclass_recall,
        )

        kwargs = {"num_classes": num_classes, "validate_args": False}
        return {
            "accuracy": float(multiclass_accuracy(preds, target, average="micro", **kwargs)),
            "precision_macro": float(
                multiclass_precision(preds, target, average="macro", **kwargs)
            ),
            "recall_macro": float(multiclass_recall(preds, target, average="macro", **kwargs)),
            "f1_macro": float(multiclass_f1_score(preds, target, average="macro", **kwargs)),
        }
    from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

    preds = inverse(target_transform, preds.reshape(-1) * y_std + y_mean)
    target = inverse(target_transform, target.float().reshape(-1) * y_std + y_mean)
    return {
        "rmse": float(mean_squared_error(preds, target, squared=False)),
        "mae": float(mean_absolute_error(preds, target)),
        "r2": float(r2_score(preds, target)) if target.numel() > 1 else float("nan"),
    }


@pytest.mark.parametrize(
    ("classes", "rows", "label_classes"),
    [
        (2, [5, 6], 2),
        (3, [30, 31, 29], 3),
        (4, [12, 1, 9], 3),  # class 3 never a target; a one-row fold
        (5, [40, 41], 2),  # several classes absent from targets
    ],
)
def test_classification_metrics_match_torchmetrics_per_fold(classes, rows, label_classes):
    generator = torch.Generator().manual_seed(classes)
    preds = [torch.randn(n, classes, generator=generator) for n in rows]
    targets = [torch.randint(0, label_classes, (n,), generator=generator) for n in rows]
    got = fold_task_metrics(preds, targets, "classification", classes, [0.0] * 3, [1.0] * 3)
    for fold, (p, t) in enumerate(zip(preds, targets)):
        expected = task_metrics(p, t, "classification", classes)
        assert got[fold] == pytest.approx(expected, abs=1e-6)


def test_regression_metrics_are_per_fold_in_target_units():
    preds = [torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0])]
    targets = [torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.0, 2.0])]
    got = fold_task_metrics(preds, targets, "regression", 1, [10.0, 0.0], [2.0, 1.0])
    assert got[0]["mae"] == pytest.approx(2.0 / 3)
    assert got[1]["rmse"] == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["random", "constant_target", "exact", "transformed"])
def test_regression_metrics_match_torchmetrics_per_fold(case):
    generator = torch.Generator().manual_seed(3)
    rows = [17, 2, 30]
    preds = [torch.randn(n, generator=generator) for n in rows]
    targets = [torch.randn(n, generator=generator) for n in rows]
    if case == "constant_target":
        targets = [torch.full((n,), 0.5) for n in rows]
    elif case == "exact":
        preds = [t.clone() for t in targets]
    transforms = ["log1p"] * 3 if case == "transformed" else None
    means, stds = [1.0, -2.0, 0.0], [2.0, 0.5, 1.0]
    got = fold_task_metrics(preds, targets, "regression", 1, means, stds, transforms)
    for fold in range(len(rows)):
        name = transforms[fold] if transforms else "none"
        expected = task_metrics(
            preds[fold], targets[fold], "regression", 1, means[fold], stds[fold], name
        )
        # torchmetrics sums in float32, these in float64
        assert got[fold] == pytest.approx(expected, rel=1e-4, abs=1e-6)
