"""Sequential fold training: each fold's LightningModule trained on its own, one after another.

This is the reference every fold-parallel engine must match, and the fallback for modules
that cannot be batched.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from hpo.train.engine import (
    EVAL_CHUNK,
    FoldEngine,
    default_loss,
    overrides_validation,
    split_optimizers,
    step_loss,
    trains_on,
)


class SequentialFolds(FoldEngine):
    """Each fold's module, optimizer and dropout RNG stream, trained one fold at a time."""

    name = "sequential"

    def __init__(self, modules, rng_states, folds, trainer_cfg, task, device) -> None:
        super().__init__(modules, rng_states, folds, trainer_cfg, task, device)
        self.modules = modules
        configured = [split_optimizers(m.configure_optimizers()) for m in modules]
        self.optimizers = [opt for opt, _ in configured]
        self.schedulers = [sched for _, sched in configured]
        self.rng_states = list(rng_states)
        # On a GPU, dropout draws from the CUDA generator: keep a stream per fold there too.
        self.cuda_rng_states = (
            [torch.cuda.get_rng_state(self.device) for _ in modules]
            if self.device.type == "cuda"
            else None
        )
        self.best_states: list[dict[str, torch.Tensor] | None] = [None] * len(modules)

    def _enter_fold(self, fold: int) -> None:
        torch.set_rng_state(self.rng_states[fold])
        if self.cuda_rng_states is not None:
            torch.cuda.set_rng_state(self.cuda_rng_states[fold], self.device)

    def _leave_fold(self, fold: int) -> None:
        self.rng_states[fold] = torch.get_rng_state()
        if self.cuda_rng_states is not None:
            self.cuda_rng_states[fold] = torch.cuda.get_rng_state(self.device)

    def step(self, fold: int, x: torch.Tensor, y: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """One optimizer step of one fold on one batch; returns the batch loss."""
        module, optimizer = self.modules[fold], self.optimizers[fold]
        loss = step_loss(module.training_step((x, y), batch_idx))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.clip)
        optimizer.step()
        return loss.detach()

    def train_epoch(self, active: list[int], orders: dict[int, torch.Tensor]) -> dict[int, float]:
        means: dict[int, float] = {}
        for fold in active:
            data = self.folds[fold]
            self.modules[fold].train()
            # Each fold owns its stream of the global RNG (dropout), so its training does
            # not depend on the other folds and resumes exactly from a checkpoint.
            self._enter_fold(fold)
            order = orders[fold].to(self.device)
            n = order.numel()
            losses = []
            for batch_idx, start in enumerate(range(0, n, self.batch_size)):
                rows = order[start : start + self.batch_size]
                if trains_on(rows.numel(), n):
                    losses.append(
                        self.step(fold, data.X_train[rows], data.y_train[rows], batch_idx)
                    )
            self._leave_fold(fold)
            if self.schedulers[fold] is not None:
                self.schedulers[fold].step()
            means[fold] = float(torch.stack(losses).mean()) if losses else 0.0
        return means

    @torch.no_grad()
    def validate(self, active: list[int]) -> dict[int, tuple[float, torch.Tensor]]:
        results = {}
        for fold in active:
            module, data = self.modules[fold], self.folds[fold]
            module.eval()
            total, outputs = 0.0, []
            n = data.X_val.shape[0]
            for batch_idx, start in enumerate(range(0, n, EVAL_CHUNK)):
                x = data.X_val[start : start + EVAL_CHUNK]
                y = data.y_val[start : start + EVAL_CHUNK]
                if overrides_validation(module):
                    out = module.validation_step((x, y), batch_idx)
                    loss, preds = out["loss"], out["preds"]
                else:
                    preds = module(x)
                    loss = default_loss(preds, y, self.task)
                total += float(loss) * x.shape[0]
                outputs.append(preds)
            results[fold] = (total / max(1, n), torch.cat(outputs))
        return results

    def remember_best(self, folds: list[int]) -> None:
        for fold in folds:
            state = self.modules[fold].state_dict()
            self.best_states[fold] = {name: t.detach().clone() for name, t in state.items()}

    def fold_module(self, fold: int, best: bool) -> Any:
        module = copy.deepcopy(self.modules[fold])
        if best and self.best_states[fold] is not None:
            module.load_state_dict(self.best_states[fold])
        return module.eval()

    def fold_state(self, fold: int, with_best: bool) -> dict[str, Any]:
        scheduler = self.schedulers[fold]
        state = {
            "module": self.modules[fold].state_dict(),
            "optimizer": self.optimizers[fold].state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng_state": self.rng_states[fold],
            "best_state": self.best_states[fold] if with_best else None,
        }
        if self.cuda_rng_states is not None:
            state["cuda_rng_state"] = self.cuda_rng_states[fold]
        return state

    def load_fold_state(self, fold: int, saved: dict[str, Any]) -> None:
        self.modules[fold].load_state_dict(saved["module"])
        self.optimizers[fold].load_state_dict(saved["optimizer"])
        if self.schedulers[fold] is not None and saved["scheduler"] is not None:
            self.schedulers[fold].load_state_dict(saved["scheduler"])
        self.rng_states[fold] = saved["rng_state"]
        if self.cuda_rng_states is not None and saved.get("cuda_rng_state") is not None:
            self.cuda_rng_states[fold] = saved["cuda_rng_state"]
        self.best_states[fold] = saved["best_state"]
