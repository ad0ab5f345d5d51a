"""The fold loop: k LightningModules trained epoch by epoch, each with its own early stopping.

The loop drives the module's own hooks (``configure_optimizers``, ``training_step``,
``validation_step``) over slices of in-memory tensors, without a Trainer or DataLoader:
on small tabular data their fixed per-step costs would dominate (see benchmarks/).
Nothing here touches Ray; the trial entry point (hpo.train.trial) reports what it returns.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hpo.data.prepare import FoldArrays, TrialData
from hpo.errors import TrialError
from hpo.models.build import build_module
from hpo.train.metrics import metric_names, task_metrics

EVAL_CHUNK = 65536


@dataclass
class EpochSummary:
    """What one epoch of a trial reports: fold means/stds and per-fold values."""

    epoch: int
    metrics: dict[str, float]
    fold_metrics: dict[str, list[float]]
    fold_best_epochs: list[int]
    folds_active: int
    finished: bool


@dataclass
class FoldState:
    module: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator  # shuffling
    rng_state: torch.Tensor  # the global RNG (dropout) as this fold left it
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    y_mean: float
    y_std: float
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def _split_optimizers(configured: Any) -> tuple[torch.optim.Optimizer, Any]:
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


class FoldTrainer:
    """Trains one model per fold for one hyperparameter configuration.

    Args:
        data: the fold arrays.
        model_cfg: the ``model`` config node (with ``_target_``).
        optim: the ``optim`` node (lr, weight_decay, label_smoothing).
        trainer_cfg: the ``trainer`` node (batch_size, patience, min_delta, ...).
        seed: seeds each fold's initialisation and shuffling (``seed + fold``).
        device: where the models and the fold tensors live for the whole trial.
    """

    def __init__(
        self,
        data: TrialData,
        model_cfg: dict[str, Any],
        optim: dict[str, Any],
        trainer_cfg: dict[str, Any],
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        self.task = data.task
        self.num_classes = data.output_dim
        self.trainer_cfg = dict(trainer_cfg)
        self.device = torch.device(device)
        self.epoch = 0
        self.folds = [
            self._make_fold(i, fold, data, model_cfg, optim, seed)
            for i, fold in enumerate(data.folds)
        ]

    def _make_fold(
        self, index: int, fold: FoldArrays, data: TrialData, model_cfg, optim, seed: int
    ) -> FoldState:
        torch.manual_seed(seed + index)
        module = build_module(model_cfg, data.input_dim, data.output_dim, data.task, optim)
        module.to(self.device)
        optimizer, scheduler = _split_optimizers(module.configure_optimizers())
        generator = torch.Generator().manual_seed(seed + index)
        rng_state = torch.get_rng_state()
        target_dtype = torch.long if self.task == "classification" else torch.float32

        def tensor(a, dtype=torch.float32):
            return torch.as_tensor(a, dtype=dtype, device=self.device)

        return FoldState(
            module=module,
            optimizer=optimizer,
            scheduler=scheduler,
            generator=generator,
            rng_state=rng_state,
            X_train=tensor(fold.X_train),
            y_train=tensor(fold.y_train, target_dtype),
            X_val=tensor(fold.X_val),
            y_val=tensor(fold.y_val, target_dtype),
            y_mean=fold.y_mean,
            y_std=fold.y_std,
        )

    @property
    def finished(self) -> bool:
        return self.epoch >= int(self.trainer_cfg["max_epochs"]) or all(
            f.stopped for f in self.folds
        )

    def run_epoch(self) -> EpochSummary:
        """Train every active fold for one epoch, validate, update early stopping."""
        self.epoch += 1
        for index, fold in enumerate(self.folds):
            if fold.stopped:
                continue
            train_loss = self._train_fold_epoch(index, fold)
            val_loss, metrics = self._validate(fold)
            if not math.isfinite(val_loss):
                raise TrialError(
                    f"fold {index}: validation loss is {val_loss} at epoch {self.epoch}; "
                    "the model diverged (lower optim.lr or set trainer.gradient_clip_val)."
                )
            fold.history.append(
                {"epoch": self.epoch, "train_loss": train_loss, "val_loss": val_loss, **metrics}
            )
            if val_loss < fold.best_loss - float(self.trainer_cfg.get("min_delta", 0.0)):
                fold.best_loss = val_loss
                fold.best_epoch = self.epoch
                fold.best_metrics = {"val_loss": val_loss, **metrics, "train_loss": train_loss}
                fold.bad_epochs = 0
                fold.best_state = copy.deepcopy(fold.module.state_dict())
            else:
                fold.bad_epochs += 1
                if fold.bad_epochs >= int(self.trainer_cfg["patience"]):
                    fold.stopped = True
        return self._summary()

    def _train_fold_epoch(self, index: int, fold: FoldState) -> float:
        module, optimizer = fold.module, fold.optimizer
        module.train()
        # Each fold owns its stream of the global RNG (dropout), so a fold's training does
        # not depend on the other folds and resumes exactly from a checkpoint.
        torch.set_rng_state(fold.rng_state)
        n = fold.X_train.shape[0]
        batch_size = int(self.trainer_cfg["batch_size"])
        order = torch.randperm(n, generator=fold.generator).to(self.device)
        clip = self.trainer_cfg.get("gradient_clip_val")
        total = 0.0
        losses = []
        for batch_idx, start in enumerate(range(0, n, batch_size)):
            rows = order[start : start + batch_size]
            if rows.numel() < 2 and n > 1:  # batch norm cannot train on one row
                continue
            out = module.training_step((fold.X_train[rows], fold.y_train[rows]), batch_idx)
            loss = out["loss"] if isinstance(out, dict) else out
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(module.parameters(), float(clip))
            optimizer.step()
            losses.append(loss.detach())
        fold.rng_state = torch.get_rng_state()
        if fold.scheduler is not None:
            fold.scheduler.step()
        if losses:
            total = float(torch.stack(losses).mean())
        if not math.isfinite(total):
            raise TrialError(
                f"fold {index}: training loss is {total} at epoch {self.epoch}; the model "
                "diverged (lower optim.lr or set trainer.gradient_clip_val)."
            )
        return total

    @torch.no_grad()
    def _validate(self, fold: FoldState) -> tuple[float, dict[str, float]]:
        module = fold.module
        module.eval()
        losses, outputs, weights = [], [], []
        n = fold.X_val.shape[0]
        for batch_idx, start in enumerate(range(0, n, EVAL_CHUNK)):
            x = fold.X_val[start : start + EVAL_CHUNK]
            y = fold.y_val[start : start + EVAL_CHUNK]
            if hasattr(module, "validation_step") and _overrides_validation(module):
                out = module.validation_step((x, y), batch_idx)
                loss, preds = out["loss"], out["preds"]
            else:
                preds = module(x)
                loss = _default_loss(preds, y, self.task)
            losses.append(float(loss) * x.shape[0])
            weights.append(x.shape[0])
            outputs.append(preds)
        val_loss = sum(losses) / max(1, sum(weights))
        metrics = task_metrics(
            torch.cat(outputs), fold.y_val, self.task, self.num_classes, fold.y_mean, fold.y_std
        )
        return val_loss, metrics

    def _summary(self) -> EpochSummary:
        names = ["val_loss", "train_loss", *(f"val_{m}" for m in metric_names(self.task))]
        per_fold: dict[str, list[float]] = {name: [] for name in names}
        for fold in self.folds:
            # A stopped fold contributes its best epoch (its early-stopping weights); an
            # active fold its current epoch.
            row = fold.best_metrics if fold.stopped else fold.history[-1]
            for name in names:
                key = name if name in ("val_loss", "train_loss") else name[len("val_") :]
                per_fold[name].append(float(row.get(key, math.nan)))
        metrics: dict[str, float] = {}
        for name, values in per_fold.items():
            arr = np.asarray(values, dtype=np.float64)
            metrics[name] = float(arr.mean())
            metrics[f"{name}_std"] = float(arr.std())
        return EpochSummary(
            epoch=self.epoch,
            metrics=metrics,
            fold_metrics=per_fold,
            fold_best_epochs=[f.best_epoch for f in self.folds],
            folds_active=sum(not f.stopped for f in self.folds),
            finished=self.finished,
        )

    def fold_modules(self, best: bool = True) -> list[Any]:
        """Each fold's LightningModule; with ``best``, carrying its best epoch's weights
        (early stopping's choice) instead of the last epoch's. Modules are copies."""
        modules = []
        for fold in self.folds:
            module = copy.deepcopy(fold.module)
            if best and fold.best_state is not None:
                module.load_state_dict(fold.best_state)
            modules.append(module.eval())
        return modules

    def fold_histories(self) -> list[list[dict[str, float]]]:
        """Per fold, one dict per trained epoch: epoch, train_loss, val_loss, val metrics."""
        return [list(fold.history) for fold in self.folds]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this trial later (tensors and plain values only)."""
        return {
            "epoch": self.epoch,
            "folds": [
                {
                    "module": f.module.state_dict(),
                    "optimizer": f.optimizer.state_dict(),
                    "scheduler": f.scheduler.state_dict() if f.scheduler is not None else None,
                    "generator": f.generator.get_state(),
                    "rng_state": f.rng_state,
                    "best_loss": f.best_loss,
                    "best_epoch": f.best_epoch,
                    "bad_epochs": f.bad_epochs,
                    "stopped": f.stopped,
                    "best_metrics": f.best_metrics,
                    "best_state": f.best_state,
                    "history": f.history,
                }
                for f in self.folds
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        for fold, saved in zip(self.folds, state["folds"]):
            fold.module.load_state_dict(saved["module"])
            fold.optimizer.load_state_dict(saved["optimizer"])
            if fold.scheduler is not None and saved["scheduler"] is not None:
                fold.scheduler.load_state_dict(saved["scheduler"])
            fold.generator.set_state(saved["generator"])
            fold.rng_state = saved["rng_state"]
            fold.best_loss = float(saved["best_loss"])
            fold.best_epoch = int(saved["best_epoch"])
            fold.bad_epochs = int(saved["bad_epochs"])
            fold.stopped = bool(saved["stopped"])
            fold.best_metrics = dict(saved["best_metrics"])
            fold.best_state = saved["best_state"]
            fold.history = list(saved["history"])


def _overrides_validation(module) -> bool:
    import lightning as L

    return type(module).validation_step is not L.LightningModule.validation_step


def _default_loss(preds: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "classification":
        return torch.nn.functional.cross_entropy(preds, y)
    return torch.nn.functional.mse_loss(preds.reshape(-1), y.reshape(-1))
