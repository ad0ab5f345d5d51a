"""When a trial's loss explodes but stays finite, the trial has diverged.

The rule (``trainer.divergence_factor``, 10 by default; null turns it off): a fold's
validation loss at any epoch above ``factor`` times a reference loss fails the trial as
diverged, with the reason; so does a validation loss that is not finite. The reference:

* tabular path (hpo's own losses, the built-in MLP's or a module without its own
  ``validation_step``, whose scale is known): the loss of a model that ignores its inputs.
  On the fold's validation rows, the cross-entropy of predicting the fold's training class
  frequencies (at least ln(classes), what an untrained model's near-uniform output scores)
  or, for regression, the MSE of predicting the training mean (targets are standardized
  by the training part, so at least 1). A trial past it is worse than guessing by a wide
  margin: the learning rate blew the weights up (lr in [10, 1000] reached losses of 4e7).
* Lightning path (a user's loss, on any scale): the fold's own first epoch's value of the
  watched loss (``watched_loss``: ``val_loss`` when the module logs it, else the sweep's
  metric when its mode is min; nothing is watched otherwise). A loss that grows to ten
  times where its first epoch left it has blown up, whatever its units. A reference <= 0
  (a log-likelihood can be negative) leaves only the finiteness check. The limit: a loss
  that explodes within the first epoch and then stays flat is not caught by the ratio
  (it is once it turns non-finite).
"""

from __future__ import annotations

import math

import torch

from hpo.errors import TrialError

DEFAULT_FACTOR = 10.0
IGNORING_INPUTS = "the loss of ignoring the inputs"


def reference_loss(y_train: torch.Tensor, y_val: torch.Tensor, task: str, classes: int) -> float:
    """The validation loss of a model that ignores its inputs (see the module docstring)."""
    if task == "classification":
        counts = torch.bincount(y_train.cpu(), minlength=classes).double() + 1.0  # Laplace
        log_prior = torch.log(counts / counts.sum())
        prior = float(-log_prior[y_val.cpu()].mean())
        return max(prior, math.log(max(classes, 2)))
    return max(float((y_val.double() ** 2).mean()), 1.0)


def check_divergence(
    fold: int,
    epoch: int,
    val_loss: float,
    reference: float,
    factor: float,
    reference_name: str = IGNORING_INPUTS,
    loss_name: str = "validation loss",
) -> None:
    """Raise TrialError when ``val_loss`` is not finite or past ``factor * reference``."""
    if math.isfinite(val_loss) and not val_loss > factor * reference:
        return
    why = (
        f"is more than trainer.divergence_factor={factor:g} times {reference_name} "
        f"({reference:.4g})"
        if math.isfinite(val_loss)
        else "is not finite"
    )
    raise TrialError(
        f"fold {fold}: {loss_name} {val_loss:.4g} at epoch {epoch} {why}; the model diverged "
        "(lower optim.lr or set trainer.gradient_clip_val)."
    )


def watched_loss(metrics: dict[str, float], metric: str, mode: str) -> str | None:
    """The Lightning path's loss under the rule: ``val_loss`` if logged, else ``metric``
    when lower is better (mode min), else None."""
    if "val_loss" in metrics:
        return "val_loss"
    return metric if mode == "min" and metric in metrics else None


class FirstEpochRule:
    """The Lightning path's rule for one trial: each fold's watched loss against its own
    first epoch's value (``references``, kept in the trial's checkpoint)."""

    def __init__(self, factor: float | None, metric: str, mode: str) -> None:
        self.factor, self.metric, self.mode = factor, metric, mode

    def check(self, fold: int, epoch: int, metrics: dict[str, float], first: float) -> float:
        """Raise TrialError if the fold diverged; return the fold's reference from now on
        (its first epoch's value, NaN until it is known)."""
        name = watched_loss(metrics, self.metric, self.mode) if self.factor else None
        if name is None:
            return first
        value = metrics[name]
        if not math.isfinite(value) or (math.isfinite(first) and first > 0):
            check_divergence(
                fold, epoch, value, first, self.factor, f"its first epoch's {name}", name
            )
        return value if math.isnan(first) else first
