"""Plain Lightning code, written for ``Trainer.fit(model, datamodule=dm)`` and nothing
else: what a user brings to the Lightning path. Real data: scikit-learn's bundled digits.

Nothing here knows about hpo, except ``HookedDigits`` (the documented optional hook)."""

from __future__ import annotations

import json
import os

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split
from torchmetrics.classification import MulticlassAccuracy


class LitDigits(L.LightningModule):
    """An MLP over the 64 digit pixels: self.log with torchmetrics, a step-interval
    OneCycleLR sized by self.trainer, save_hyperparameters."""

    def __init__(self, hidden: int = 32, lr: float = 0.01, dropout: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
        )
        self.train_acc = MulticlassAccuracy(num_classes=10)
        self.val_acc = MulticlassAccuracy(num_classes=10)
        self.test_acc = MulticlassAccuracy(num_classes=10)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_acc(self(x), y)
        self.log("test_acc", self.test_acc)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.hparams.lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class PlateauDigits(LitDigits):
    """The same model with ReduceLROnPlateau on val_loss (epoch interval, `monitor`)."""

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"},
        }


def digits_tensors():
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(digits.target, dtype=torch.long)


class DigitsDataModule(L.LightningDataModule):
    """Digits split into train / val / test by the DataModule itself."""

    def __init__(self, batch_size: int = 64, val_fraction: float = 0.2, with_test: bool = True):
        super().__init__()
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.with_test = with_test

    def setup(self, stage=None):
        x, y = digits_tensors()
        full = TensorDataset(x, y)
        generator = torch.Generator().manual_seed(0)
        n_test = 300 if self.with_test else 0
        n_val = int(self.val_fraction * (len(full) - n_test))
        self.train_set, self.val_set, self.test_set = random_split(
            full, [len(full) - n_test - n_val, n_val, n_test], generator=generator
        )

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)

    def test_dataloader(self):
        if not self.with_test:
            raise RuntimeError("no test set")
        return DataLoader(self.test_set, batch_size=256)

    def predict_dataloader(self):
        return DataLoader([x for x, _ in self.test_set], batch_size=256)


class NoTestDigits(DigitsDataModule):
    """A DataModule without a test_dataloader: hpo cuts test_size itself."""

    def __init__(self, batch_size: int = 64):
        super().__init__(batch_size=batch_size, with_test=False)

    test_dataloader = L.LightningDataModule.test_dataloader


class UnlabelledDigits(NoTestDigits):
    """Rows are bare feature tensors wrapped in a dataset without labels."""

    def setup(self, stage=None):
        x, _ = digits_tensors()
        self.train_set = [row for row in x]
        self.val_set = self.train_set[:10]

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)


class HookedDigits(NoTestDigits):
    """Hands hpo its rows and labels through the documented hook."""

    def hpo_dataset(self):
        x, y = digits_tensors()
        return {"dataset": TensorDataset(x, y), "labels": y.numpy()}


class RecordEpochs(L.Callback):
    """A user's callback: appends one JSON line per validation run to ``path``
    (the fold's Trainer root, the epoch, the val_acc it saw)."""

    def __init__(self, path: str):
        self.path = path

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val_acc")
        row = {
            "root": trainer.default_root_dir,
            "epoch": trainer.current_epoch + 1,
            "val_acc": None if value is None else float(value),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "pid": os.getpid(),
        }
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


class _DigitStream(torch.utils.data.IterableDataset):
    def __iter__(self):
        x, y = digits_tensors()
        return iter(zip(x, y))


class StreamingDigits(NoTestDigits):
    """An IterableDataset: no length, so no folds."""

    def setup(self, stage=None):
        self.train_set = _DigitStream()

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size)

    val_dataloader = L.LightningDataModule.val_dataloader


class BrokenDigits(LitDigits):
    """Fails in its forward pass (a shape bug): caught by the preflight."""

    def forward(self, x):
        return self.net(x[:, :10])


class TwoInputDigits(LitDigits):
    """Its forward takes the pixels and a scale that only its own steps pass: a batch's
    inputs alone cannot call it, so hpo cannot time it (latency_ms)."""

    def forward(self, x, scale):
        return self.net(x * scale)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x, 1.0), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x, 1.0)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)
