"""When a trial's loss explodes but stays finite, the trial has diverged.

The rule (``trainer.divergence_factor``, 10 by default; null turns it off): a fold's
validation loss at any epoch above ``factor`` times the loss of a model that ignores its
inputs fails the trial as diverged. That reference loss is, on the fold's validation
rows, the cross-entropy of predicting the fold's training class frequencies (at least
ln(classes), what an untrained model's near-uniform output scores) or, for regression,
the MSE of predicting the training mean (targets are standardized by the training
part, so at least 1). A trial past it is worse than guessing by a wide margin: the
learning rate blew the weights up (the issue's lr in [10, 1000] reached losses of 4e7).

Applies to hpo's own losses (the built-in MLP, or a module without its own
``validation_step``), whose scale is known; a module's own loss may be on any scale. The
Lightning path checks only that the metric stays finite.
"""

from __future__ import annotations

import math

import torch

from hpo.errors import TrialError

DEFAULT_FACTOR = 10.0


def reference_loss(y_train: torch.Tensor, y_val: torch.Tensor, task: str, classes: int) -> float:
    """The validation loss of a model that ignores its inputs (see the module docstring)."""
    if task == "classification":
        counts = torch.bincount(y_train.cpu(), minlength=classes).double() + 1.0  # Laplace
        log_prior = torch.log(counts / counts.sum())
        prior = float(-log_prior[y_val.cpu()].mean())
        return max(prior, math.log(max(classes, 2)))
    return max(float((y_val.double() ** 2).mean()), 1.0)


def check_divergence(fold: int, epoch: int, val_loss: float, reference: float, factor: float):
    """Raise TrialError when ``val_loss`` is past ``factor * reference``."""
    if val_loss > factor * reference:
        raise TrialError(
            f"fold {fold}: validation loss {val_loss:.4g} at epoch {epoch} is more than "
            f"trainer.divergence_factor={factor:g} times the loss of ignoring the inputs "
            f"({reference:.4g}); the model diverged (lower optim.lr or set "
            "trainer.gradient_clip_val)."
        )
