"""AdamW for parameters that hold k fold-models at once (a leading fold dimension).

Each fold keeps its own optimizer state: its slice of the moment estimates and its own
step count, so a fold that skips a step (it has no rows in that step, or it stopped
early) is left exactly as it was, and its later bias corrections use its own count.
While every fold has taken the same number of steps (the usual case) the update is
the arithmetic of ``torch.optim.AdamW`` (single-tensor path) on the whole tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class FoldAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, no amsgrad) with per-fold state.

    Args:
        params: tensors whose first dimension is the fold.
        lr, betas, eps, weight_decay: as ``torch.optim.AdamW``, the same for every fold.
    """

    def __init__(
        self,
        params: Any,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        folds = {p.shape[0] for group in self.param_groups for p in group["params"]}
        if len(folds) != 1:
            raise ValueError(f"all parameters need the same leading fold dimension, got {folds}")
        self.num_folds = folds.pop()
        self.steps = np.zeros(self.num_folds, dtype=np.int64)  # per fold, kept on the host

    def step(self, closure: Any = None, stepping: Sequence[bool] | None = None) -> None:
        """One update of the folds marked True in ``stepping`` (default: all folds)."""
        self.update(stepping)

    @torch.no_grad()
    def update(self, stepping: Sequence[bool] | None = None) -> None:
        """``step`` without the Optimizer hooks' per-call cost (the training loop's path)."""
        if stepping is not None and all(stepping):
            stepping = None
        if stepping is None:
            self.steps += 1
        else:
            self.steps += np.asarray(stepping, dtype=np.int64)
        uniform = stepping is None and bool((self.steps == self.steps[0]).all())
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                if uniform:
                    self._uniform_update(param, state, group, int(self.steps[0]))
                else:
                    self._per_fold_update(param, state, group, stepping)

    @staticmethod
    def _uniform_update(param, state, group, step: int) -> None:
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        grad = param.grad
        param.mul_(1 - lr * wd)
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        denom = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
        param.addcdiv_(state["exp_avg"], denom, value=-step_size)

    def _per_fold_update(self, param, state, group, stepping) -> None:
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        on = np.ones(self.num_folds, dtype=bool) if stepping is None else np.asarray(stepping)
        counted = np.maximum(self.steps, 1).astype(np.float64)
        # Per-fold coefficients; a fold that does not step gets the identity update.
        columns = np.stack(
            [
                np.where(on, 1 - lr * wd, 1.0),
                np.where(on, 1 - beta1, 0.0),
                np.where(on, 1 - beta2, 0.0),
                1 / np.sqrt(1 - beta2**counted),
                np.where(on, lr / (1 - beta1**counted), 0.0),
            ]
        )
        coef = torch.as_tensor(columns, dtype=param.dtype).to(param.device)
        coef = coef.view(5, self.num_folds, *([1] * (param.dim() - 1)))
        grad = param.grad
        param.mul_(coef[0])
        state["exp_avg"].lerp_(grad, coef[1])
        state["exp_avg_sq"].lerp_(grad.square(), coef[2])
        denom = state["exp_avg_sq"].sqrt().mul_(coef[3]).add_(eps)
        param.sub_(state["exp_avg"].div(denom).mul_(coef[4]))

    def fold_state(self, fold: int) -> dict[str, Any]:
        """Fold ``fold``'s step count and moment estimates (views)."""
        state = self.state.get(self.param_groups[0]["params"][0], {})
        return {
            "step": int(self.steps[fold]),
            "exp_avg": state["exp_avg"][fold] if state else None,
            "exp_avg_sq": state["exp_avg_sq"][fold] if state else None,
        }

    def load_fold_state(self, fold: int, step: int, exp_avg: Any, exp_avg_sq: Any) -> None:
        """Set fold ``fold``'s step count and moments (None: zeros) of the first parameter."""
        param = self.param_groups[0]["params"][0]
        state = self.state[param]
        if not state:
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.steps[fold] = int(step)
        with torch.no_grad():
            for key, value in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
                if value is None:
                    state[key][fold].zero_()
                else:
                    state[key][fold].copy_(value)


def clip_fold_grad_norm_(param: torch.Tensor, max_norm: float) -> None:
    """``clip_grad_norm_`` on each fold's slice of a ``[folds, n]`` parameter's gradient."""
    grad = param.grad
    if grad is None:
        return
    norms = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
    grad.mul_((max_norm / (norms + 1e-6)).clamp_(max=1.0))
