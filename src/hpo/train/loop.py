"""The fold loop: k LightningModules trained epoch by epoch, each with its own early stopping.

The loop drives the modules' own hooks (``configure_optimizers``, ``training_step``,
``validation_step``) over slices of in-memory tensors, without a Trainer or DataLoader:
on small tabular data their fixed per-step costs would dominate (benchmarks/throughput.py).
The k folds train as one batched computation where the module allows it (an engine, chosen
once per trial: ``batched`` for the built-in MLP, ``vmap`` for a user module that allows
it, ``sequential`` otherwise); every engine gives each fold its own rows, optimizer state,
RNG streams and early stopping, and the same results as training the folds one by one.
Nothing here touches Ray; the trial entry point (hpo.train.trial) reports what it returns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from hpo.data.arrays import FoldArrays, TrialData
from hpo.errors import TrialError
from hpo.models.batched_mlp import FoldBatchedMLP
from hpo.models.build import build_module
from hpo.models.mlp_net import MLPNet
from hpo.train.batched import BatchedFolds
from hpo.train.cost import COST_METRICS, model_cost
from hpo.train.divergence import DEFAULT_FACTOR, check_divergence, reference_loss
from hpo.train.engine import overrides_validation
from hpo.train.metrics import fold_task_metrics, metric_names
from hpo.train.sequential import SequentialFolds
from hpo.train.vmapped import VmappedFolds, vmap_refusal

log = logging.getLogger(__name__)
ENGINES = ("auto", "batched", "vmap", "sequential")
_logged_choices: set[tuple[str, str]] = set()


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
    """One fold's data (on the trial's device), shuffling stream and early-stopping record."""

    generator: torch.Generator  # shuffling
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    y_mean: float
    y_std: float
    target_transform: str = "none"  # regression: undone with the standardization in metrics
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    best_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def choose_engine(modules: list[Any], folds: list[FoldState], requested: str = "auto") -> str:
    """``batched`` for the built-in MLP, ``vmap`` for a module whose training step runs
    under vmap, else ``sequential``; logged once per module class and choice."""
    if requested not in ENGINES:
        raise TrialError(f"fold engine must be one of {ENGINES}, got {requested!r}.")
    if requested == "sequential":
        choice, reason = "sequential", "requested"
    elif requested in ("auto", "batched") and FoldBatchedMLP.supports(modules[0]):
        choice, reason = "batched", "the built-in MLP, with weights stacked along a fold dimension"
    elif requested == "batched":
        raise TrialError(
            f"the batched fold engine needs the built-in TabularMLP, not {type(modules[0]).__name__}."
        )
    elif len(modules) < 2:
        choice, reason = "sequential", "one fold"
    else:
        refusal = vmap_refusal(modules[0], folds[0].X_train[:2], folds[0].y_train[:2])
        if refusal is None:
            choice, reason = "vmap", "torch.func.vmap over its training_step"
        elif requested == "vmap":
            raise TrialError(f"{type(modules[0]).__name__} cannot train under vmap: {refusal}")
        else:
            choice, reason = "sequential", f"it cannot run under vmap: {refusal}"
    key = (type(modules[0]).__qualname__, choice)
    if key not in _logged_choices:
        _logged_choices.add(key)
        level = logging.WARNING if reason.startswith("it cannot") else logging.INFO
        log.log(level, "hpo: the folds of %s train %s (%s)", key[0], choice, reason)
    return choice


ENGINE_CLASSES = {"batched": BatchedFolds, "vmap": VmappedFolds, "sequential": SequentialFolds}


class FoldTrainer:
    """Trains one model per fold for one hyperparameter configuration.

    Args:
        data: the fold arrays.
        model_cfg: the ``model`` config node (with ``_target_``).
        optim: the ``optim`` node (lr, weight_decay, label_smoothing).
        trainer_cfg: the ``trainer`` node (batch_size, patience, min_delta, ...).
        seed: seeds each fold's initialisation and shuffling (``seed + fold``).
        device: where the models and the fold tensors live for the whole trial.
        engine: ``auto`` (default), or force ``batched``, ``vmap`` or ``sequential``.
    """

    def __init__(
        self,
        data: TrialData,
        model_cfg: dict[str, Any],
        optim: dict[str, Any],
        trainer_cfg: dict[str, Any],
        seed: int,
        device: str | torch.device = "cpu",
        engine: str = "auto",
    ) -> None:
        self.task = data.task
        self.num_classes = data.output_dim
        self.trainer_cfg = dict(trainer_cfg)
        self.device = torch.device(device)
        self.epoch = 0
        self.cost: dict[str, float] | None = None  # hpo.train.cost, measured after epoch 1
        target_dtype = torch.long if self.task == "classification" else torch.float32
        modules, rng_states, self.folds = [], [], []
        for index, fold in enumerate(data.folds):
            torch.manual_seed(seed + index)
            modules.append(
                build_module(model_cfg, data.input_dim, data.output_dim, data.task, optim).to(
                    self.device
                )
            )
            rng_states.append(torch.get_rng_state())  # the fold's dropout stream starts here
            self.folds.append(self._fold_state(fold, seed + index, target_dtype))
        self.engine_name = choose_engine(modules, self.folds, engine)
        factor = self.trainer_cfg.get("divergence_factor", DEFAULT_FACTOR)
        # hpo's losses (the built-in MLP's too); a user's own validation loss: any scale
        own_loss = isinstance(modules[0], MLPNet) or not overrides_validation(modules[0])
        self.divergence = (
            (float(factor), [reference_loss(f.y_train, f.y_val, self.task, self.num_classes)
                             for f in self.folds])
            if factor and own_loss else None
        )  # fmt: skip
        self.engine = ENGINE_CLASSES[self.engine_name](
            modules, rng_states, self.folds, self.trainer_cfg, self.task, self.device
        )

    def _fold_state(self, fold: FoldArrays, seed: int, target_dtype: torch.dtype) -> FoldState:
        def tensor(a, dtype=torch.float32):
            return torch.as_tensor(a, dtype=dtype, device=self.device)

        return FoldState(
            generator=torch.Generator().manual_seed(seed),
            X_train=tensor(fold.X_train),
            y_train=tensor(fold.y_train, target_dtype),
            X_val=tensor(fold.X_val),
            y_val=tensor(fold.y_val, target_dtype),
            y_mean=fold.y_mean,
            y_std=fold.y_std,
            target_transform=fold.target_transform,
        )

    @property
    def finished(self) -> bool:
        return self.epoch >= int(self.trainer_cfg["max_epochs"]) or all(
            f.stopped for f in self.folds
        )

    def run_epoch(self) -> EpochSummary:
        """Train every active fold for one epoch, validate, update early stopping."""
        self.epoch += 1
        active = [index for index, fold in enumerate(self.folds) if not fold.stopped]
        orders = {
            index: torch.randperm(
                self.folds[index].X_train.shape[0], generator=self.folds[index].generator
            )
            for index in active
        }
        train_losses = self.engine.train_epoch(active, orders)
        for index in active:
            if not math.isfinite(train_losses[index]):
                raise TrialError(
                    f"fold {index}: training loss is {train_losses[index]} at epoch {self.epoch}; "
                    "the model diverged (lower optim.lr or set trainer.gradient_clip_val)."
                )
        validated = self.engine.validate(active)
        for index in active:
            if not math.isfinite(validated[index][0]):
                raise TrialError(
                    f"fold {index}: validation loss is {validated[index][0]} at epoch "
                    f"{self.epoch}; the model diverged (lower optim.lr or set "
                    "trainer.gradient_clip_val)."
                )
            if self.divergence:
                factor, references = self.divergence
                check_divergence(index, self.epoch, validated[index][0], references[index], factor)
        metrics = fold_task_metrics(
            [validated[index][1] for index in active],
            [self.folds[index].y_val for index in active],
            self.task,
            self.num_classes,
            [self.folds[index].y_mean for index in active],
            [self.folds[index].y_std for index in active],
            [self.folds[index].target_transform for index in active],
        )
        improved = []
        min_delta = float(self.trainer_cfg.get("min_delta", 0.0))
        for index, fold_metrics in zip(active, metrics):
            fold = self.folds[index]
            val_loss, train_loss = validated[index][0], train_losses[index]
            fold.history.append(
                {
                    "epoch": self.epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    **fold_metrics,
                }
            )
            if val_loss < fold.best_loss - min_delta:
                fold.best_loss = val_loss
                fold.best_epoch = self.epoch
                fold.best_metrics = {"val_loss": val_loss, **fold_metrics, "train_loss": train_loss}
                fold.bad_epochs = 0
                improved.append(index)
            else:
                fold.bad_epochs += 1
                if fold.bad_epochs >= int(self.trainer_cfg["patience"]):
                    fold.stopped = True
        if improved:
            self.engine.remember_best(improved)
        return self._summary()

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
            mean = sum(values) / len(values)
            metrics[name] = mean
            metrics[f"{name}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        metrics.update(self._cost())
        return EpochSummary(
            epoch=self.epoch,
            metrics=metrics,
            fold_metrics=per_fold,
            fold_best_epochs=[f.best_epoch for f in self.folds],
            folds_active=sum(not f.stopped for f in self.folds),
            finished=self.finished,
        )

    def _cost(self) -> dict[str, float]:
        """latency_ms and param_count of fold 0's model (NaN if its forward fails)."""
        if self.cost is None:
            try:
                self.cost = model_cost(self.engine.fold_module(0, False), self.folds[0].X_val)
            except Exception as exc:  # a user module whose forward takes other inputs
                log.warning("hpo: cannot time the model's forward pass: %s", exc)
                self.cost = dict.fromkeys(COST_METRICS, math.nan)
        return self.cost

    def fold_modules(self, best: bool = True, lightning: bool = True) -> list[Any]:
        """Each fold's module; with ``best``, carrying its best epoch's weights (early
        stopping's choice) instead of the last epoch's. Modules are standalone copies in eval
        mode; the built-in MLP's as ordinary ``TabularMLP`` LightningModules (a trial trains
        its Lightning-free ``MLPNet``: hpo.models.build), or with ``lightning=False`` as
        that ``MLPNet`` (the same layers and weights; the tabular export needs no Lightning,
        whose import takes seconds)."""
        modules = [self.engine.fold_module(index, best) for index in range(len(self.folds))]
        if not lightning:
            return modules
        return [m.as_lightning() if isinstance(m, MLPNet) else m for m in modules]

    def fold_histories(self) -> list[list[dict[str, float]]]:
        """Per fold, one dict per trained epoch: epoch, train_loss, val_loss, val metrics."""
        return [list(fold.history) for fold in self.folds]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this trial later (tensors and plain values only).

        The same layout for every engine (per fold: the module's and the optimizer's own
        state dicts). A fold whose best epoch is the current one stores no second copy of
        its weights (``best_is_current``)."""
        folds = []
        for index, fold in enumerate(self.folds):
            best_is_current = fold.best_epoch == self.epoch and self.epoch > 0
            folds.append(
                {
                    **self.engine.fold_state(index, with_best=not best_is_current),
                    "generator": fold.generator.get_state(),
                    "best_loss": fold.best_loss,
                    "best_epoch": fold.best_epoch,
                    "bad_epochs": fold.bad_epochs,
                    "stopped": fold.stopped,
                    "best_metrics": fold.best_metrics,
                    "best_is_current": best_is_current,
                    "history": fold.history,
                }
            )
        return {"epoch": self.epoch, "engine": self.engine_name, "folds": folds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        for index, (fold, saved) in enumerate(zip(self.folds, state["folds"])):
            self.engine.load_fold_state(index, saved)
            if saved.get("best_is_current"):
                self.engine.remember_best([index])
            fold.generator.set_state(saved["generator"])
            fold.best_loss = float(saved["best_loss"])
            fold.best_epoch = int(saved["best_epoch"])
            fold.bad_epochs = int(saved["bad_epochs"])
            fold.stopped = bool(saved["stopped"])
            fold.best_metrics = dict(saved["best_metrics"])
            fold.history = list(saved["history"])
