"""The built-in tabular MLP's code, without Lightning.

``MLPNet`` is a plain ``torch.nn.Module`` with the LightningModule hooks hpo's lean loop
calls; ``hpo.models.mlp.TabularMLP`` is the same class as a ``lightning.LightningModule``
(what users subclass and what a Lightning ``Trainer`` fits). A trial of the built-in MLP
builds ``MLPNet`` (hpo.models.build), so a Ray worker starts without importing Lightning
(about 7 s of a worker's start on 2 cores: Lightning, torchmetrics and what they import);
the two classes have the same layers, initialisation and state-dict keys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


class MLPNet(nn.Module):
    """An MLP for tabular classification or regression, with Lightning's hooks
    (``training_step``, ``validation_step``, ``configure_optimizers``) as plain methods.

    Args:
        input_dim: number of (preprocessed) features.
        output_dim: number of classes, or 1 for regression.
        task: ``classification`` or ``regression``.
        optim: optimizer settings: ``lr``, ``weight_decay``, ``label_smoothing``.
        hidden_dim, num_layers, dropout, activation, batch_norm: the architecture.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        task: str,
        optim: dict[str, Any],
        hidden_dim: int = 128,
        num_layers: int = 2,
        dropout: float = 0.1,
        activation: str = "relu",
        batch_norm: bool = False,
        name: str = "mlp",
    ) -> None:
        super().__init__()
        # the constructor's arguments, for a TabularMLP copy (``as_lightning``)
        self.arguments = {
            "input_dim": input_dim, "output_dim": output_dim, "task": task,
            "optim": dict(optim), "hidden_dim": hidden_dim, "num_layers": num_layers,
            "dropout": dropout, "activation": activation, "batch_norm": batch_norm,
            "name": name,
        }  # fmt: skip
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.task = task
        self.optim = dict(optim)
        layers: list[nn.Module] = []
        width = input_dim
        for _ in range(num_layers):
            # Batch norm subtracts the batch mean, so a bias before it would learn nothing
            # but rounding noise (which AdamW amplifies); it is left out.
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_dim
        layers.append(nn.Linear(width, output_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.task == "regression" else out

    def _loss(self, outputs: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
        if self.task == "regression":
            return F.mse_loss(outputs, y)
        return F.cross_entropy(outputs, y, label_smoothing=smoothing)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        return self._loss(self(x), y, float(self.optim.get("label_smoothing", 0.0)))

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        x, y = batch
        outputs = self(x)
        # Unsmoothed loss, so that trials with different label_smoothing compare fairly.
        return {"loss": self._loss(outputs, y, 0.0), "preds": outputs}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(),
            lr=float(self.optim["lr"]),
            weight_decay=float(self.optim.get("weight_decay", 0.0)),
        )

    def as_lightning(self) -> MLPNet:
        """This module as a ``TabularMLP`` (a LightningModule: the same layers, weights,
        buffers and train/eval mode); a TabularMLP (or a subclass) comes back as it is.
        Imports Lightning; the global RNG is left as it was."""
        from hpo.models.mlp import TabularMLP

        if isinstance(self, TabularMLP):
            return self
        with torch.random.fork_rng(devices=[]):
            module = TabularMLP(**self.arguments)
        parameter = next(self.parameters(), None)
        if parameter is not None:
            module.to(parameter.device)
        module.load_state_dict(self.state_dict())
        return module.train(self.training)


# The classes FoldBatchedMLP stacks exactly (hpo.models.mlp adds TabularMLP): a subclass
# may change the architecture or the hooks, so it trains fold by fold or under vmap.
BATCHABLE: set[type] = {MLPNet}
