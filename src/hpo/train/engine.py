"""What every fold engine is: the interface the FoldTrainer (hpo.train.loop) drives, and
the helpers the engines share.

An engine owns the k fold-models and their optimizers; the FoldTrainer owns the data, the
shuffling and early stopping. Engines: SequentialFolds (hpo.train.sequential, the
reference every other engine must match), VmappedFolds (hpo.train.vmapped) and
BatchedFolds (hpo.train.batched).
"""

from __future__ import annotations

from typing import Any

import torch

from hpo.errors import TrialError

EVAL_CHUNK = 65536


def split_optimizers(configured: Any) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and the (epoch-wise) scheduler from ``configure_optimizers()``."""
    if isinstance(configured, torch.optim.Optimizer):
        return configured, None
    if isinstance(configured, dict):
        scheduler = configured.get("lr_scheduler")
        if isinstance(scheduler, dict):
            scheduler = scheduler.get("scheduler")
        return configured["optimizer"], scheduler
    if isinstance(configured, (list, tuple)) and configured:
        first = configured[0]
        if isinstance(first, (list, tuple)):  # ([optimizers], [schedulers])
            scheds = configured[1] if len(configured) > 1 else [None]
            return first[0], scheds[0] if scheds else None
        return first, None
    raise TrialError(
        "configure_optimizers() must return an optimizer or a dict with `optimizer`; "
        f"got {type(configured).__name__}."
    )


def trains_on(rows: int, fold_rows: int) -> bool:
    """Whether a batch of ``rows`` is trained on: batch norm cannot train on one row, so a
    one-row last batch is skipped (unless the fold has one row only)."""
    return rows >= 2 or (rows == 1 and fold_rows == 1)


def step_loss(output: Any) -> torch.Tensor:
    return output["loss"] if isinstance(output, dict) else output


def default_loss(preds: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "classification":
        return torch.nn.functional.cross_entropy(preds, y)
    return torch.nn.functional.mse_loss(preds.reshape(-1), y.reshape(-1))


def overrides_validation(module: Any) -> bool:
    import lightning as L

    return type(module).validation_step is not L.LightningModule.validation_step


class FoldEngine:
    """Trains the k fold-models of one trial.

    Args:
        modules: one LightningModule per fold (already on ``device``).
        rng_states: each fold's global-RNG state (its dropout stream) after building it.
        folds: the FoldTrainer's per-fold data (``X_train``, ``y_train``, ``X_val``, ...).
        trainer_cfg: the ``trainer`` node.
        task: ``classification`` or ``regression``.
        device: where modules and data live.
    """

    name = "engine"

    def __init__(
        self,
        modules: list[Any],
        rng_states: list[torch.Tensor],
        folds: list[Any],
        trainer_cfg: dict[str, Any],
        task: str,
        device: str | torch.device,
    ) -> None:
        self.folds = folds
        self.task = task
        self.device = torch.device(device)
        self.batch_size = int(trainer_cfg["batch_size"])
        self.clip = float(trainer_cfg.get("gradient_clip_val") or 0.0)

    def train_epoch(self, active: list[int], orders: dict[int, torch.Tensor]) -> dict[int, float]:
        """One epoch of the ``active`` folds, each over its own train rows in the order
        ``orders[fold]`` gives; returns each fold's mean training loss."""
        raise NotImplementedError

    def validate(self, active: list[int]) -> dict[int, tuple[float, torch.Tensor]]:
        """Each active fold's validation loss and predictions."""
        raise NotImplementedError

    def remember_best(self, folds: list[int]) -> None:
        """The current weights of ``folds`` become their best epoch's."""
        raise NotImplementedError

    def fold_module(self, fold: int, best: bool) -> Any:
        """A standalone copy of one fold's LightningModule, in eval mode."""
        raise NotImplementedError

    def fold_state(self, fold: int, with_best: bool) -> dict[str, Any]:
        """One fold's checkpoint entry (tensors and plain values only): ``module``,
        ``optimizer``, ``scheduler`` (their own state dicts), ``rng_state``, ``best_state``."""
        raise NotImplementedError

    def load_fold_state(self, fold: int, saved: dict[str, Any]) -> None:
        raise NotImplementedError
