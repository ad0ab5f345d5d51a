"""Fold-parallel training of any LightningModule that allows it, with ``torch.func.vmap``.

The k fold-modules keep their own parameters and their own optimizers (whatever the
module's ``configure_optimizers`` returns). In each step the folds' parameters are
stacked and the module's own ``training_step`` runs once under ``vmap`` over the fold
dimension (``torch.func.functional_call``); the backward pass sends each fold's gradient
to that fold's parameters, and each fold's optimizer steps. A step in which the folds'
batches differ in size (the last batch of folds with different row counts) runs fold by
fold instead, so every fold sees exactly its own rows.

A module is vmapped only when a probe on a copy of it succeeds: its ``training_step`` must
draw no random numbers (each fold's dropout stream could not be kept apart), update no
buffers (batch-norm running statistics) and give the same loss under vmap as alone.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, vmap

from hpo.train.engine import step_loss, trains_on
from hpo.train.sequential import SequentialFolds


class _TrainingStep(nn.Module):
    """Calls ``module.training_step`` as this module's forward, so ``functional_call``
    can run it with swapped-in parameters; returns the loss tensor."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.batch_idx = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return step_loss(self.module.training_step((x, y), self.batch_idx))


def _fold_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters and buffers under the names ``_TrainingStep`` gives them."""
    named = [*module.named_parameters(), *module.named_buffers()]
    return {f"module.{name}": tensor for name, tensor in named}


def _stack(per_fold: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([tensors[name] for tensors in per_fold]) for name in per_fold[0]}


def _vmapped_losses(caller: _TrainingStep, stacked: dict[str, torch.Tensor], x, y) -> torch.Tensor:
    """Each fold's training loss (``[folds]``); ``stacked`` holds the folds' parameters
    and buffers along dim 0."""
    return vmap(
        lambda tensors, xb, yb: functional_call(caller, tensors, (xb, yb)), randomness="error"
    )(stacked, x, y)


def vmap_refusal(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Why ``module`` cannot train its folds under vmap, or None if it can.

    Runs one training step on two copies of ``module`` (under vmap, and alone) on the
    rows ``x, y``; the module itself is not touched."""
    try:
        copies = [copy.deepcopy(module).train() for _ in range(2)]
        caller = _TrainingStep(copies[0])
        stacked = _stack([_fold_tensors(twin) for twin in copies])
        before = {name: t.detach().clone() for name, t in stacked.items()}
        losses = _vmapped_losses(caller, stacked, torch.stack([x, x]), torch.stack([y, y]))
        losses.sum().backward()
    except Exception as exc:  # any failure under vmap means: train the folds one by one
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    for name, _ in copies[0].named_buffers():
        if not torch.equal(before[f"module.{name}"], stacked[f"module.{name}"]):
            return f"its training_step updates the buffer {name!r} (vmap cannot keep it per fold)"
    with torch.no_grad():
        alone = step_loss(copies[1].training_step((x, y), 0))
    if not torch.allclose(losses[0].detach(), alone, rtol=1e-4, atol=1e-6, equal_nan=True):
        return "its training_step gives a different loss under vmap"
    return None


class VmappedFolds(SequentialFolds):
    """SequentialFolds whose training steps run all folds at once under vmap."""

    name = "vmap"

    def __init__(self, modules, rng_states, folds, trainer_cfg, task, device) -> None:
        super().__init__(modules, rng_states, folds, trainer_cfg, task, device)
        # modules[0] runs the step for every fold: functional_call swaps the stacked
        # parameters in for the call and puts its own back afterwards.
        self.caller = _TrainingStep(modules[0])
        self.fold_tensors = [_fold_tensors(module) for module in modules]

    def train_epoch(self, active: list[int], orders: dict[int, torch.Tensor]) -> dict[int, float]:
        size = self.batch_size
        orders = {fold: orders[fold].to(self.device) for fold in active}
        for fold in active:
            self.modules[fold].train()
        losses: dict[int, list[torch.Tensor]] = {fold: [] for fold in active}
        steps = max(-(-orders[fold].numel() // size) for fold in active)
        for batch_idx in range(steps):
            batches = {}
            for fold in active:
                n = orders[fold].numel()
                rows = orders[fold][batch_idx * size : (batch_idx + 1) * size]
                if trains_on(rows.numel(), n):
                    batches[fold] = rows
            if len(batches) > 1 and len({rows.numel() for rows in batches.values()}) == 1:
                for fold, loss in zip(batches, self._vmapped_step(batches, batch_idx)):
                    losses[fold].append(loss)
            else:
                for fold, rows in batches.items():
                    data = self.folds[fold]
                    losses[fold].append(
                        self.step(fold, data.X_train[rows], data.y_train[rows], batch_idx)
                    )
        means = {}
        for fold in active:
            if self.schedulers[fold] is not None:
                self.schedulers[fold].step()
            means[fold] = float(torch.stack(losses[fold]).mean()) if losses[fold] else 0.0
        return means

    def _vmapped_step(self, batches: dict[int, torch.Tensor], batch_idx: int) -> torch.Tensor:
        folds = list(batches)
        x = torch.stack([self.folds[f].X_train[rows] for f, rows in batches.items()])
        y = torch.stack([self.folds[f].y_train[rows] for f, rows in batches.items()])
        for fold in folds:
            self.optimizers[fold].zero_grad(set_to_none=True)
        self.caller.batch_idx = batch_idx
        stacked = _stack([self.fold_tensors[f] for f in folds])
        losses = _vmapped_losses(self.caller, stacked, x, y)
        losses.sum().backward()  # fold f's loss depends on fold f's parameters only
        for fold in folds:
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.modules[fold].parameters(), self.clip)
            self.optimizers[fold].step()
        return losses.detach()
