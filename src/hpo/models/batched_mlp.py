"""The built-in MLP for all k folds of a trial at once: one module whose weights
carry a leading fold dimension, trained with FoldAdamW (hpo.models.fold_adamw).

Every fold still is its own model: its own weights, batch-norm statistics, dropout
stream (one ``torch.Generator`` per fold) and optimizer state (per-fold step counts).
A fold that has no rows in a step (it stopped early, or its epoch has fewer batches)
is masked out: its weights, statistics and optimizer state do not change. On small
tabular data this turns k small matrix products per layer into one batched product,
which is where fold-parallel training gains (benchmarks/throughput.py).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hpo.models.fold_adamw import FoldAdamW
from hpo.models.mlp_net import ACTIVATIONS, BATCHABLE, MLPNet

ELEMENTWISE = tuple(ACTIVATIONS.values())


class FoldBatchedMLP(nn.Module):
    """k built-in MLP fold-models (``MLPNet`` or ``TabularMLP``) as one module:
    ``forward(x)`` maps ``[k, n, features]`` to ``[k, n, classes]`` (``[k, n]`` for
    regression).

    Built from the k fold modules, so initialisation matches training them one by one;
    ``fold_module(i)`` / ``fold_state_dict(i)`` give fold i back as a module of the folds'
    class.

    Args:
        folds: the fold-models, all built from the same config.
        dropout_generators: one generator per fold for its dropout masks.
    """

    def __init__(self, folds: list[MLPNet], dropout_generators: list[torch.Generator]) -> None:
        super().__init__()
        template = folds[0]
        self.task = template.task
        self.optim = dict(template.optim)
        self.num_folds = len(folds)
        self.dropout_generators = list(dropout_generators)
        self._template = (copy.deepcopy(template).cpu(),)  # a tuple: not a submodule
        names = [name for name, _ in template.named_parameters()]
        self._param_names = names
        self._param_shapes = [p.shape for p in template.parameters()]
        self._param_sizes = [p.numel() for p in template.parameters()]
        flat = torch.stack(
            [torch.cat([p.detach().reshape(-1) for p in fold.parameters()]) for fold in folds]
        )
        self.flat = nn.Parameter(flat)  # [folds, all weights of one fold]
        self._buffer_names: dict[str, str] = {}
        for name, _ in template.named_buffers():
            own = name.replace(".", "__")
            self._buffer_names[name] = own
            self.register_buffer(own, torch.stack([dict(f.named_buffers())[name] for f in folds]))
        self._plan = self._layer_plan(template)
        optimizer_state = template.configure_optimizers().state_dict()
        self._optimizer_group = dict(optimizer_state["param_groups"][0])

    @staticmethod
    def supports(module: Any) -> bool:
        """Whether ``module`` is a plain built-in MLP this class can batch exactly."""
        if type(module) not in BATCHABLE:  # MLPNet or TabularMLP, not a subclass
            return False
        optimizer = module.configure_optimizers()
        group = optimizer.param_groups[0]
        if type(optimizer) is not torch.optim.AdamW or len(optimizer.param_groups) != 1:
            return False
        if group["amsgrad"] or group["maximize"]:
            return False
        for layer in module.net:
            if isinstance(layer, nn.BatchNorm1d):
                if layer.momentum is None or not layer.affine or not layer.track_running_stats:
                    return False
            elif not isinstance(layer, (nn.Linear, nn.Dropout, *ELEMENTWISE)):
                return False
        return True

    def _layer_plan(self, template: MLPNet) -> list[tuple]:
        index = {id(p): i for i, p in enumerate(template.parameters())}
        plan: list[tuple] = []
        for position, layer in enumerate(template.net):
            if isinstance(layer, nn.Linear):
                bias = None if layer.bias is None else index[id(layer.bias)]
                plan.append(("linear", index[id(layer.weight)], bias))
            elif isinstance(layer, nn.BatchNorm1d):
                own = {
                    stat: self._buffer_names[f"net.{position}.{stat}"]
                    for stat in ("running_mean", "running_var", "num_batches_tracked")
                }
                plan.append(
                    (
                        "norm",
                        index[id(layer.weight)],
                        index[id(layer.bias)],
                        own,
                        layer.eps,
                        layer.momentum,
                    )
                )
            elif isinstance(layer, nn.Dropout):
                if layer.p > 0:
                    plan.append(("dropout", float(layer.p)))
            else:
                plan.append(("elementwise", layer))
        return plan

    def forward(
        self,
        x: torch.Tensor,
        row_mask: torch.Tensor | None = None,
        rows_per_fold: list[int] | None = None,
    ) -> torch.Tensor:
        """``x``: ``[folds, n, features]``. In training, ``row_mask`` (``[folds, n]``, 1 for
        a real row) and ``rows_per_fold`` say which rows are padding; None: all are real."""
        chunks = self.flat.split(self._param_sizes, dim=1)
        k = x.shape[0]
        h = x
        for step in self._plan:
            kind = step[0]
            if kind == "linear":
                weight = chunks[step[1]].view(k, *self._param_shapes[step[1]])
                if step[2] is None:
                    h = torch.bmm(h, weight.transpose(1, 2))
                else:
                    h = torch.baddbmm(chunks[step[2]].unsqueeze(1), h, weight.transpose(1, 2))
            elif kind == "norm":
                h = self._batch_norm(
                    h, chunks[step[1]], chunks[step[2]], step[3], step[4], step[5], row_mask
                )
            elif kind == "dropout":
                if self.training:
                    h = h * self._dropout_mask(h, step[1], rows_per_fold)
            else:
                h = step[1](h)
        return h.squeeze(-1) if self.task == "regression" else h

    def _batch_norm(self, h, weight, bias, buffers, eps, momentum, row_mask) -> torch.Tensor:
        running_mean = getattr(self, buffers["running_mean"])
        running_var = getattr(self, buffers["running_var"])
        if not self.training:
            scale = (running_var + eps).rsqrt() * weight
            return (h - running_mean.unsqueeze(1)) * scale.unsqueeze(1) + bias.unsqueeze(1)
        if row_mask is None:
            count = torch.full((h.shape[0], 1), float(h.shape[1]), device=h.device, dtype=h.dtype)
            mean = h.mean(dim=1)
            var = h.var(dim=1, unbiased=False)
        else:
            mask = row_mask.unsqueeze(-1)
            count = row_mask.sum(dim=1, keepdim=True)
            mean = (h * mask).sum(dim=1) / count.clamp(min=1)
            var = ((h - mean.unsqueeze(1)).square() * mask).sum(dim=1) / count.clamp(min=1)
        with torch.no_grad():
            # A fold without rows in this step keeps its statistics, as it would alone.
            rate = momentum * (count > 0).to(h.dtype)
            unbiased = var * count / (count - 1).clamp(min=1)
            running_mean.lerp_(mean, rate)
            running_var.lerp_(unbiased, rate)
            tracked = getattr(self, buffers["num_batches_tracked"])
            tracked.add_((count.squeeze(1) > 0).to(tracked.dtype))
        scale = (var + eps).rsqrt() * weight
        return (h - mean.unsqueeze(1)) * scale.unsqueeze(1) + bias.unsqueeze(1)

    def _dropout_mask(
        self, h: torch.Tensor, p: float, rows_per_fold: list[int] | None
    ) -> torch.Tensor:
        # Each fold draws its mask from its own generator, row for row as nn.Dropout does
        # on that fold's batch alone, so the masks match sequential training exactly.
        if rows_per_fold is None:
            mask = torch.empty_like(h)
            for fold, generator in enumerate(self.dropout_generators):
                mask[fold].bernoulli_(1 - p, generator=generator)
        else:
            mask = torch.zeros_like(h)
            for fold, rows in enumerate(rows_per_fold):
                if rows:
                    mask[fold, :rows].bernoulli_(1 - p, generator=self.dropout_generators[fold])
        return mask.div_(1 - p)

    def fold_losses(
        self,
        outputs: torch.Tensor,
        y: torch.Tensor,
        row_mask: torch.Tensor | None,
        smoothing: float,
    ) -> torch.Tensor:
        """Each fold's mean loss over its real rows: ``[folds]``."""
        if self.task == "regression":
            per_row = (outputs - y).square()
        else:
            k, n, classes = outputs.shape
            per_row = F.cross_entropy(
                outputs.reshape(k * n, classes),
                y.reshape(k * n),
                reduction="none",
                label_smoothing=smoothing,
            ).view(k, n)
        if row_mask is None:
            return per_row.mean(dim=1)
        return (per_row * row_mask).sum(dim=1) / row_mask.sum(dim=1).clamp(min=1)

    def training_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        """``batch``: ``(x, y, row_mask, rows_per_fold)``; returns the summed loss (each
        fold's gradient is its own loss's) and ``fold_losses``."""
        x, y, row_mask, rows_per_fold = batch
        losses = self.fold_losses(
            self(x, row_mask, rows_per_fold),
            y,
            row_mask,
            float(self.optim.get("label_smoothing", 0.0)),
        )
        return {"loss": losses.sum(), "fold_losses": losses.detach()}

    def validation_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        """``batch``: ``(x, y, row_mask)``; per-fold unsmoothed ``loss`` and the ``preds``."""
        x, y, row_mask = batch
        outputs = self(x)
        return {"loss": self.fold_losses(outputs, y, row_mask, 0.0), "preds": outputs}

    def configure_optimizers(self) -> FoldAdamW:
        group = self._optimizer_group
        return FoldAdamW(
            [self.flat],
            lr=group["lr"],
            betas=group["betas"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
        )

    def weights(self) -> dict[str, torch.Tensor]:
        """The live weights and buffers of every fold, by name (no copies)."""
        return {
            "flat": self.flat.detach(),
            **{own: getattr(self, own) for own in self._buffer_names.values()},
        }

    def fold_state_dict(
        self, fold: int, source: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Fold ``fold`` as a built-in MLP state dict (copies, on the CPU), from the live
        weights or from ``source`` (a snapshot of ``weights()``, e.g. the best epoch's)."""
        source = self.weights() if source is None else source
        row = source["flat"][fold]
        state = {
            name: chunk.reshape(shape).clone().cpu()
            for name, chunk, shape in zip(
                self._param_names, row.split(self._param_sizes), self._param_shapes
            )
        }
        for name, own in self._buffer_names.items():
            state[name] = source[own][fold].clone().cpu()
        return state

    def load_fold_state_dict(
        self,
        fold: int,
        state: dict[str, torch.Tensor],
        target: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Set fold ``fold`` from a built-in MLP state dict, in the live weights or in
        ``target`` (a snapshot of ``weights()``)."""
        target = self.weights() if target is None else target
        with torch.no_grad():
            weights = torch.cat([state[name].reshape(-1) for name in self._param_names])
            target["flat"][fold].copy_(weights)
            for name, own in self._buffer_names.items():
                target[own][fold].copy_(state[name])

    def fold_module(self, fold: int, source: dict[str, torch.Tensor] | None = None) -> MLPNet:
        """Fold ``fold`` as a standalone module of the folds' class (CPU, eval mode)."""
        module = copy.deepcopy(self._template[0])
        module.load_state_dict(self.fold_state_dict(fold, source))
        return module.eval()

    def fold_optimizer_state(self, optimizer: FoldAdamW, fold: int) -> dict[str, Any]:
        """Fold ``fold``'s optimizer state in ``torch.optim.AdamW.state_dict()`` form."""
        saved = optimizer.fold_state(fold)
        state: dict[int, dict[str, torch.Tensor]] = {}
        if saved["step"] > 0:
            moments = [saved[key].split(self._param_sizes) for key in ("exp_avg", "exp_avg_sq")]
            for i, shape in enumerate(self._param_shapes):
                state[i] = {
                    "step": torch.tensor(float(saved["step"])),
                    "exp_avg": moments[0][i].reshape(shape).clone().cpu(),
                    "exp_avg_sq": moments[1][i].reshape(shape).clone().cpu(),
                }
        return {"state": state, "param_groups": [dict(self._optimizer_group)]}

    def load_fold_optimizer_state(
        self, optimizer: FoldAdamW, fold: int, saved: dict[str, Any]
    ) -> None:
        entries = [saved["state"].get(i) for i in range(len(self._param_sizes))]
        if entries[0] is None:  # the fold has not stepped yet
            optimizer.load_fold_state(fold, 0, None, None)
            return
        moments = [
            torch.cat([e[key].reshape(-1) for e in entries]) for key in ("exp_avg", "exp_avg_sq")
        ]
        optimizer.load_fold_state(fold, int(float(entries[0]["step"])), *moments)
