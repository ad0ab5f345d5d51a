"""Embedding + 1D-CNN or GRU text classifier, as an ordinary LightningModule."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

PAD_ID = 0  # the DataModule pads with 0 (examples.text_classifier.data.PAD_ID)


class CNNEncoder(nn.Module):
    """Two same-padded 1D convolutions, then a max over the non-pad positions."""

    def __init__(self, embed_dim: int, hidden_dim: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(embed_dim, hidden_dim, kernel_size, padding=pad)
        self.conv2 = nn.Conv1d(hidden_dim, hidden_dim, kernel_size, padding=pad)
        self.out_dim = hidden_dim

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(emb.transpose(1, 2)))
        h = F.relu(self.conv2(h))
        h = h[..., : mask.shape[1]]  # an even kernel_size adds one position
        # Pad positions must not win the max: the outputs there only saw padding.
        return h.masked_fill(~mask.unsqueeze(1), float("-inf")).amax(dim=2)


class GRUEncoder(nn.Module):
    """A bidirectional GRU over the packed sequences; the two final states, concatenated."""

    def __init__(self, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden_dim

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Packing keeps the padding out of the recurrence (pack wants lengths on the CPU).
        lengths = mask.sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            emb, lengths, batch_first=True, enforce_sorted=False
        )
        _, h_n = self.gru(packed)  # [2, B, hidden_dim]
        return torch.cat([h_n[0], h_n[1]], dim=1)


class LitTextClassifier(L.LightningModule):
    """Token embedding, a CNN or GRU encoder, dropout and a linear head.

    AdamW, with ReduceLROnPlateau on ``val_loss`` once per epoch.

    Args:
        vocab_size: Embedding rows; at least the DataModule's vocabulary (use its ``vocab_size``).
        num_classes: Number of classes (8 for the emoji-name languages).
        embed_dim: Embedding width.
        hidden_dim: CNN channels, or GRU state size per direction.
        dropout: Dropout on the embeddings and before the head.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        encoder: "cnn" or "gru".
        kernel_size: CNN kernel width (unused by the GRU).
        lr_factor: ReduceLROnPlateau's factor.
        lr_patience: Epochs without a better ``val_loss`` before the learning rate drops.
    """

    def __init__(
        self,
        vocab_size: int = 2000,
        num_classes: int = 8,
        embed_dim: int = 64,
        hidden_dim: int = 128,
        dropout: float = 0.2,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        encoder: str = "cnn",
        kernel_size: int = 3,
        lr_factor: float = 0.5,
        lr_patience: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        if encoder == "cnn":
            self.encoder = CNNEncoder(embed_dim, hidden_dim, kernel_size)
        elif encoder == "gru":
            self.encoder = GRUEncoder(embed_dim, hidden_dim)
        else:
            raise ValueError(f"encoder must be 'cnn' or 'gru', got {encoder!r}")
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_dim, num_classes)
        # Plain accuracy (micro average): torchmetrics' default "macro" would be class-balanced.
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def setup(self, stage: str) -> None:
        """Check that the DataModule's vocabulary and classes fit this model, if it has one."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer else None
        vocab_len = getattr(dm, "vocab_len", 0)
        if vocab_len > self.hparams.vocab_size:
            raise ValueError(
                f"the vocabulary has {vocab_len} tokens but the embedding only "
                f"{self.hparams.vocab_size} rows: give the model vocab_size >= {vocab_len}"
            )
        num_classes = getattr(dm, "num_classes", self.hparams.num_classes)
        if num_classes != self.hparams.num_classes:
            raise ValueError(f"data has {num_classes} classes, model {self.hparams.num_classes}")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map padded token ids ``[B, T]`` to class logits ``[B, num_classes]``."""
        mask = tokens != PAD_ID
        emb = self.dropout(self.embedding(tokens))
        return self.head(self.dropout(self.encoder(emb, mask)))

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        tokens, y = batch
        logits = self(tokens)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        tokens, y = batch
        logits = self(tokens)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        tokens, y = batch
        logits = self(tokens)
        self.test_acc(logits, y)
        self.log("test_loss", F.cross_entropy(logits, y))
        self.log("test_acc", self.test_acc)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Return class probabilities ``[B, num_classes]``; labels in the batch are ignored."""
        tokens = batch[0] if isinstance(batch, (list, tuple)) else batch
        return torch.softmax(self(tokens), dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.hparams.lr_factor, patience=self.hparams.lr_patience
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": "val_loss",
                "interval": "epoch",
                "frequency": 1,
            },
        }
