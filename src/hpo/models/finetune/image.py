"""``model=finetune_image``: a pretrained image backbone with a new head for the task's
classes (or one output for regression), and the fine-tuning keys as constructor arguments
(README "Fine-tuning (images)").

Batches are ``(images, labels)`` (hpo.data.images). It logs ``train_loss``, ``val_loss``
(never label-smoothed; MSE for regression), ``val_acc`` (classification) or ``val_mae``
(regression), and the same for ``test_``; ``forward`` returns logits (or values),
``predict_step`` class probabilities (or values).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from hpo.errors import ConfigError
from hpo.models.finetune.backbones import build_backbone
from hpo.models.finetune.common import (
    ClassifierHead,
    FreezeHooks,
    FreezeSchedule,
    TargetScaling,
    check_range,
    eval_loss,
    finetune_optimizers,
    param_groups,
    train_loss,
)


def mix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    mixup: float,
    cutmix: float,
    regression: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (blend two images) or CutMix (paste a box of one into another), one of the
    two at random when both are on; the targets become the matching soft labels (for
    regression, the same blend of the two values).

    Pitfall it addresses: a few hundred images are memorised within epochs; mixing pairs
    regularises the decision boundary. Off on validation rows (it is in training_step).
    """
    use_cutmix = cutmix > 0 and (mixup <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix if use_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    soft = y.to(x.dtype) if regression else nn.functional.one_hot(y, classes).to(x.dtype)
    if use_cutmix:
        height, width = x.shape[-2:]
        cut = (1 - lam) ** 0.5
        h, w = int(height * cut), int(width * cut)
        top = int(torch.randint(0, height - h + 1, (1,)))
        left = int(torch.randint(0, width - w + 1, (1,)))
        x = x.clone()
        x[..., top : top + h, left : left + w] = x[perm][..., top : top + h, left : left + w]
        lam = 1 - (h * w) / (height * width)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * soft + (1 - lam) * soft[perm]


class ImageFinetuner(FreezeHooks, TargetScaling, L.LightningModule):
    """A backbone (``model.backbone``, weights from ``model.weights``) and a new head.

    Args:
        backbone: ``hf`` (a transformers save_pretrained directory), ``torchvision:NAME``,
            ``timm:NAME`` or a bare NAME (torchvision, then timm).
        weights: Local weights: the save_pretrained directory, or a state-dict file.
        pretrained: False: same architecture, random weights (the from-scratch baseline).
        num_classes: Outputs of the head; ``auto``: the classes hpo found (1 for
            regression).
        task: ``classification`` or ``regression`` (``auto``: hpo fills it from the data;
            ``data.targets`` makes a regression set).
        lr: Learning rate of the head (peak of the schedule).
        backbone_lr_mult: The backbone's rate as a fraction of ``lr``.
        layer_decay: Each block below the top gets ``layer_decay`` times the rate above it.
        weight_decay: AdamW's (not on biases and norms).
        warmup_epochs: Linear warmup length (fractions allowed), then cosine to
            ``min_lr_ratio`` of each rate.
        unfreeze_epoch: The backbone is frozen for this many epochs (head only).
        trainable_blocks: Top blocks that train once unfrozen (-1: all; 0: linear probe).
        head_dropout: Dropout before the head.
        drop_path: Stochastic depth rate, for backbones that have it (ConvNeXt, ViT-like
            in timm); an error for those that do not.
        label_smoothing: Of the training loss only.
        mixup, cutmix: Beta(alpha, alpha) of the mix; 0 turns each off.
        mix_prob: Share of training batches that are mixed.
        channels_last: NHWC memory format (faster convolutions with AMP on GPUs).
    """

    def __init__(
        self,
        backbone: str = "hf",
        weights: str | None = None,
        pretrained: bool = True,
        num_classes: int | str = "auto",
        task: str = "classification",
        lr: float = 1e-3,
        backbone_lr_mult: float = 0.1,
        layer_decay: float = 1.0,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        unfreeze_epoch: int = 0,
        trainable_blocks: int = -1,
        head_dropout: float = 0.0,
        drop_path: float = 0.0,
        label_smoothing: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mix_prob: float = 1.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise ConfigError(
                f"config key `model.task`: classification or regression, not {task!r} "
                "(`auto` is filled in by hpo from the data)."
            )
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(
                f"config key `model.num_classes`: {num_classes!r}; `auto` is filled in by hpo "
                "from the data; outside a sweep give the number of classes."
            )
        check_range("label_smoothing", label_smoothing, 0.0, 0.5)
        check_range("drop_path", drop_path, 0.0, 0.9)
        check_range("mix_prob", mix_prob, 0.0, 1.0)
        for key, value in (("mixup", mixup), ("cutmix", cutmix)):
            check_range(key, value, 0.0, 10.0)
        self.save_hyperparameters()
        built = build_backbone(str(backbone), weights, bool(pretrained), float(drop_path))
        self.backbone = built.module
        self.blocks = built.blocks
        self.task = task
        outputs = num_classes if task == "classification" else 1
        self.head = ClassifierHead(built.features, outputs, head_dropout)
        self.init_target_scaling()
        self.freeze = FreezeSchedule(built.blocks, unfreeze_epoch, trainable_blocks)
        self.train()  # from_pretrained hands back eval mode; Lightning would keep it
        self.freeze.apply(0)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` (normalised) to logits ``[B, num_classes]``."""
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.scale_output(self.head(self.backbone(x)))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        hp = self.hparams
        if (hp.mixup > 0 or hp.cutmix > 0) and bool(torch.rand(()) < hp.mix_prob):
            x, y = mix_batch(x, y, hp.num_classes, hp.mixup, hp.cutmix, self.task == "regression")
        loss = train_loss(self(x), y, self.task, hp.label_smoothing)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def _evaluate(self, batch, prefix: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{prefix}_loss", eval_loss(logits, y, self.task), batch_size=len(x))
        if self.task == "regression":
            mae = (logits.squeeze(-1) - y.float()).abs().mean()
            self.log(f"{prefix}_mae", mae, batch_size=len(x))
            return
        acc = (logits.argmax(dim=-1) == y).float().mean()
        self.log(f"{prefix}_acc", acc, batch_size=len(x))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if self.task == "regression":
            return self(x).squeeze(-1)
        return torch.softmax(self(x), dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = param_groups(
            self.head, self.blocks, self.backbone, hp.lr, hp.weight_decay,
            hp.backbone_lr_mult, hp.layer_decay,
        )  # fmt: skip
        return finetune_optimizers(self.trainer, groups, hp.warmup_epochs, hp.min_lr_ratio)
