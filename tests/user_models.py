"""LightningModules defined outside hpo, swept by `_target_` in tests (the user contract)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F


class TinyLinear(L.LightningModule):
    """The smallest module that follows the contract: a (possibly wide) linear model."""

    def __init__(self, input_dim, output_dim, task, optim, name="tiny", width=8):
        super().__init__()
        self.task = task
        self.lr = float(optim["lr"])
        self.width = int(width)
        self.body = torch.nn.Sequential(
            torch.nn.Linear(input_dim, self.width),
            torch.nn.ReLU(),
            torch.nn.Linear(self.width, output_dim),
        )

    def forward(self, x):
        out = self.body(x)
        return out.squeeze(-1) if self.task == "regression" else out

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        preds = self(x)
        return {"loss": F.cross_entropy(preds, y), "preds": preds}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class DivergingLinear(TinyLinear):
    """Returns a NaN loss when its lr is above 1: the sweep must record it and go on."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.lr > 1 else loss


class CrashOnce(TinyLinear):
    """Kills its own worker process once, at epoch `crash_epoch` of its first fold.

    A marker file (path in the env var HPO_TEST_CRASH_MARKER) makes it crash only once."""

    def __init__(self, *args, crash_epoch=3, **kwargs):
        super().__init__(*args, **kwargs)
        self.crash_epoch = crash_epoch
        self.epochs_seen = 0

    def on_train_epoch_start(self):
        pass

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.epochs_seen += 1
        marker = Path(os.environ.get("HPO_TEST_CRASH_MARKER", "/nonexistent/marker"))
        if self.epochs_seen == self.crash_epoch and batch_idx == 0 and not marker.exists():
            marker.write_text("crashed")
            os._exit(1)
        return super().training_step(batch, batch_idx)
