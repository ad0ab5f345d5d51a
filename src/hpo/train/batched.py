"""Fold-parallel training of the built-in MLP: the k folds as one FoldBatchedMLP.

The fold arrays are padded into ``[folds, rows, features]`` tensors once, on the trial's
device, and each epoch's shuffled row order of every fold becomes one index tensor there,
so a batch is one ``index_select`` with no host-to-device copy. Folds whose batches differ
in a step (a fold stopped early, or the last batch of folds with different row counts)
are handled by a row mask: padding rows carry no loss, no batch-norm statistics and no
dropout draws, and a fold without rows in a step is not stepped at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hpo.models.batched_mlp import FoldBatchedMLP
from hpo.models.fold_adamw import clip_fold_grad_norm_
from hpo.train.engine import EVAL_CHUNK, FoldEngine


def _padded(parts: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    longest = max(part.shape[0] for part in parts)
    out = torch.zeros(
        (len(parts), longest, *parts[0].shape[1:]), dtype=parts[0].dtype, device=device
    )
    for fold, part in enumerate(parts):
        out[fold, : part.shape[0]] = part
    return out


def _dropout_generator(rng_state: torch.Tensor, device: torch.device) -> torch.Generator:
    """A generator for one fold's dropout masks that starts where the fold's global RNG
    stream would (on a GPU: seeded from that stream)."""
    cpu = torch.Generator()
    cpu.set_state(rng_state)
    if device.type == "cpu":
        return cpu
    generator = torch.Generator(device=device)
    generator.manual_seed(int(torch.randint(0, 2**62, (1,), generator=cpu)))
    return generator


class BatchedFolds(FoldEngine):
    """The k ``TabularMLP`` fold-models as one FoldBatchedMLP."""

    name = "batched"

    def __init__(self, modules, rng_states, folds, trainer_cfg, task, device) -> None:
        super().__init__(modules, rng_states, folds, trainer_cfg, task, device)
        self.generators = [_dropout_generator(state, self.device) for state in rng_states]
        self.model = FoldBatchedMLP([m.cpu() for m in modules], self.generators).to(self.device)
        self.optimizer = self.model.configure_optimizers()
        self.best = {name: t.clone() for name, t in self.model.weights().items()}
        self.k = len(folds)
        self.n_train = [fold.X_train.shape[0] for fold in folds]
        self.n_val = [fold.X_val.shape[0] for fold in folds]
        self.X_train = _padded([f.X_train for f in folds], self.device)
        self.y_train = _padded([f.y_train for f in folds], self.device)
        self.X_val = _padded([f.X_val for f in folds], self.device)
        self.y_val = _padded([f.y_val for f in folds], self.device)
        rows = torch.arange(self.X_val.shape[1], device=self.device)
        self.val_mask = (rows < torch.tensor(self.n_val, device=self.device)[:, None]).float()
        for index, fold in enumerate(folds):  # the folds' tensors become views of the padded ones
            fold.X_train = self.X_train[index, : self.n_train[index]]
            fold.y_train = self.y_train[index, : self.n_train[index]]
            fold.X_val = self.X_val[index, : self.n_val[index]]
            fold.y_val = self.y_val[index, : self.n_val[index]]

    def _epoch_plan(self, active, orders) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Rows per fold per step (host), every step's rows as flat indices into the
        padded train tensors, and the row masks (device)."""
        size, longest = self.batch_size, self.X_train.shape[1]
        steps = max(-(-self.n_train[fold] // size) for fold in active)
        index = torch.zeros((self.k, steps * size), dtype=torch.long)
        fold_rows = np.zeros(self.k, dtype=np.int64)  # a stopped fold has no rows
        for fold in active:
            fold_rows[fold] = self.n_train[fold]
            index[fold, : fold_rows[fold]] = orders[fold]
        counts = np.clip(fold_rows[None, :] - np.arange(steps)[:, None] * size, 0, size)
        counts[(counts == 1) & (fold_rows[None, :] > 1)] = 0  # as trains_on() decides
        index += torch.arange(self.k)[:, None] * longest
        mask = torch.arange(size)[None, None, :] < torch.from_numpy(counts)[:, :, None]
        return counts, index.to(self.device), mask.float().to(self.device)

    def train_epoch(self, active: list[int], orders: dict[int, torch.Tensor]) -> dict[int, float]:
        model, optimizer, size = self.model, self.optimizer, self.batch_size
        model.train()
        counts, index, masks = self._epoch_plan(active, orders)
        features = self.X_train.reshape(-1, *self.X_train.shape[2:])
        targets = self.y_train.reshape(-1)
        loss_sums = torch.zeros(self.k, device=self.device)
        for step, rows_per_fold in enumerate(counts):
            rows = int(rows_per_fold.max())
            if rows == 0:
                continue
            flat = index[:, step * size : step * size + rows].reshape(-1)
            x = features.index_select(0, flat).view(self.k, rows, -1)
            y = targets.index_select(0, flat).view(self.k, rows)
            if (rows_per_fold == rows).all():  # every fold trains on a batch of this size
                batch, stepping = (x, y, None, None), None
            else:
                batch = (x, y, masks[step, :, :rows], rows_per_fold.tolist())
                stepping = (rows_per_fold > 0).tolist()
            out = model.training_step(batch, step)
            model.flat.grad = None
            out["loss"].backward()
            if self.clip:
                clip_fold_grad_norm_(model.flat, self.clip)
            optimizer.update(stepping)
            loss_sums += out["fold_losses"]
        trained_steps = (counts > 0).sum(axis=0).tolist()
        sums = loss_sums.tolist()  # the epoch's one device-to-host transfer of losses
        return {f: sums[f] / trained_steps[f] if trained_steps[f] else 0.0 for f in active}

    @torch.no_grad()
    def validate(self, active: list[int]) -> dict[int, tuple[float, torch.Tensor]]:
        self.model.eval()
        loss_sums = torch.zeros(self.k, device=self.device)
        outputs = []
        for batch_idx, start in enumerate(range(0, self.X_val.shape[1], EVAL_CHUNK)):
            window = slice(start, start + EVAL_CHUNK)
            mask = self.val_mask[:, window]
            out = self.model.validation_step(
                (self.X_val[:, window], self.y_val[:, window], mask), batch_idx
            )
            loss_sums += out["loss"] * mask.sum(dim=1)
            outputs.append(out["preds"])
        preds = torch.cat(outputs, dim=1)
        losses = loss_sums.tolist()
        return {f: (losses[f] / max(1, self.n_val[f]), preds[f, : self.n_val[f]]) for f in active}

    def remember_best(self, folds: list[int]) -> None:
        chosen = torch.tensor(folds, device=self.device)
        for name, live in self.model.weights().items():
            self.best[name][chosen] = live[chosen]

    def fold_module(self, fold: int, best: bool) -> Any:
        return self.model.fold_module(fold, self.best if best else None)

    def fold_state(self, fold: int, with_best: bool) -> dict[str, Any]:
        return {
            "module": self.model.fold_state_dict(fold),
            "optimizer": self.model.fold_optimizer_state(self.optimizer, fold),
            "scheduler": None,
            "rng_state": self.generators[fold].get_state(),
            "best_state": self.model.fold_state_dict(fold, self.best) if with_best else None,
        }

    def load_fold_state(self, fold: int, saved: dict[str, Any]) -> None:
        self.model.load_fold_state_dict(fold, saved["module"])
        self.model.load_fold_optimizer_state(self.optimizer, fold, saved["optimizer"])
        self.generators[fold].set_state(saved["rng_state"])
        source = saved["best_state"] if saved["best_state"] is not None else saved["module"]
        self.model.load_fold_state_dict(fold, source, target=self.best)
