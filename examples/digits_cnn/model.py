"""A small CNN for the digits images, as an ordinary LightningModule."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU; padding keeps the spatial size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LitDigitsCNN(L.LightningModule):
    """Two conv stages, global average pooling and a linear head; AdamW with a per-step OneCycleLR.

    The global pooling makes the network work for any ``image_size`` of the DataModule.

    Args:
        channels: Channels of the first stage (the second has twice as many).
        dropout: Dropout before the linear head.
        lr: Peak learning rate of the one-cycle schedule (``max_lr``).
        weight_decay: AdamW weight decay.
        num_classes: Number of classes.
        pct_start: Share of the training steps spent warming the learning rate up to ``lr``.
        div_factor: The schedule starts at ``lr / div_factor``.
    """

    def __init__(
        self,
        channels: int = 16,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        num_classes: int = 10,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        c = channels
        self.features = nn.Sequential(
            conv_block(1, c),
            conv_block(c, c),
            nn.MaxPool2d(2),
            conv_block(c, 2 * c),
            conv_block(2 * c, 2 * c),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c, num_classes))
        # Plain accuracy (micro average): torchmetrics' default "macro" would be class-balanced.
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``[B, 1, H, W]`` to class logits ``[B, num_classes]``."""
        return self.head(self.features(x))

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.test_acc(logits, y)
        self.log("test_loss", F.cross_entropy(logits, y))
        self.log("test_acc", self.test_acc)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Return class probabilities ``[B, num_classes]``; labels in the batch are ignored."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return torch.softmax(self(x), dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        # OneCycleLR needs the run's total optimizer steps up front; the Trainer knows them
        # (epochs x batches, after limit_train_batches and gradient accumulation).
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise ValueError("OneCycleLR needs a finite run: set max_epochs or max_steps")
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.hparams.lr,
            total_steps=int(total_steps),
            pct_start=self.hparams.pct_start,
            div_factor=self.hparams.div_factor,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
