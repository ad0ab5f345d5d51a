"""A user's LightningModule shipped to the cluster with `hpo submit --working-dir`.

It waits a moment at the start of every epoch, so trials last long enough for the
second node's worker to come up and take some (iris itself trains in milliseconds)."""

from __future__ import annotations

import time

import lightning as L
import torch
from torch.nn import functional as F


class PacedLinear(L.LightningModule):
    def __init__(self, input_dim, output_dim, task, optim, name="paced", pause_s=1.0):
        super().__init__()
        self.lr = float(optim["lr"])
        self.pause_s = float(pause_s)
        self.body = torch.nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.body(x)

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            time.sleep(self.pause_s)
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
