"""What every fine-tuning module shares (images and text): the freeze schedule, the
optimizer's parameter groups (backbone lr multiplier, layer-wise lr decay, no decay on
biases and norms), warmup plus cosine, the classification head and the losses.

Each piece names the pitfall it is there for. The model hands over its parts as three
things: ``blocks`` (the backbone's modules, bottom to top: stem/embeddings first, last
stage last), the backbone module itself (for parameters outside the blocks) and the head.
Nothing here knows an architecture; ``image.py`` and ``text.py`` say which modules are
the blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from hpo.errors import ConfigError

# Norms with running statistics (public classes only).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def check_range(key: str, value: float, low: float, high: float) -> None:
    """A fine-tuning key outside ``[low, high]`` is a ConfigError naming ``model.KEY``."""
    if not low <= value <= high:
        raise ConfigError(
            f"config key `model.{key}`: {value!r} is outside [{low}, {high}]; set it inside."
        )


class FreezeSchedule:
    """Which backbone blocks train at each epoch: all frozen before ``unfreeze_epoch``,
    then the top ``trainable_blocks`` (None: all of them).

    Pitfalls it addresses:
      * A randomly initialised head sends large gradients into pretrained weights during
        the first steps and wrecks them ("catastrophic forgetting"): train the head alone
        first (``unfreeze_epoch`` > 0), then unfreeze.
      * On a small data set the whole backbone overfits: train only the top blocks
        (``trainable_blocks``), whose features are the most task-specific.
      * ``from_pretrained`` returns a model in eval mode and Lightning (2.2+) keeps the
        modes it finds: a backbone left so trains with frozen BatchNorm statistics and no
        dropout. Unfrozen blocks are put in train mode here (the module calls ``train()``
        after building its backbone).
      * ``requires_grad=False`` alone leaves BatchNorm updating its running statistics in
        train mode, so a "frozen" backbone still drifts to the small batches' statistics:
        frozen blocks' norm layers are kept in eval mode (``keep_frozen_norms_eval``, which
        the module calls from its ``train()``; Lightning calls ``train()`` before every
        training epoch and after every validation).
    Frozen parameters stay in the optimizer from the start (their grads are None, so
    AdamW skips them, weight decay included): unfreezing needs no new parameter group,
    unlike callbacks that add groups mid-run and leave the lr scheduler unaware of them.

    Args:
        blocks: The backbone's blocks, bottom to top.
        unfreeze_epoch: Epochs (0-based count) the whole backbone stays frozen; 0: never.
        trainable_blocks: How many top blocks train once unfrozen; None or negative: all;
            0: the backbone is never trained (a linear probe).
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        unfreeze_epoch: int = 0,
        trainable_blocks: int | None = None,
    ) -> None:
        if unfreeze_epoch < 0:
            raise ConfigError(f"config key `model.unfreeze_epoch`: {unfreeze_epoch} < 0; use >= 0.")
        self.blocks = list(blocks)
        self.unfreeze_epoch = int(unfreeze_epoch)
        n = len(self.blocks)
        self.trainable = (
            n if trainable_blocks is None or trainable_blocks < 0 else min(int(trainable_blocks), n)
        )
        self.frozen: list[bool] = [False] * n

    def apply(self, epoch: int) -> list[bool]:
        """Set ``requires_grad`` of every block for ``epoch``; returns which are frozen."""
        n = len(self.blocks)
        unfrozen = 0 if epoch < self.unfreeze_epoch else self.trainable
        self.frozen = [i < n - unfrozen for i in range(n)]
        for block, frozen in zip(self.blocks, self.frozen):
            block.requires_grad_(not frozen)
            if not frozen:
                block.train()  # a block unfrozen now: its norms update again
        self.keep_frozen_norms_eval()
        return self.frozen

    def keep_frozen_norms_eval(self) -> None:
        """Put the norm layers of frozen blocks in eval mode (running stats stay put)."""
        for block, frozen in zip(self.blocks, self.frozen):
            if frozen:
                for layer in block.modules():
                    if isinstance(layer, BATCH_NORMS):
                        layer.eval()


def _decays(name: str, param: nn.Parameter) -> bool:
    """Biases and 1-D scales (norm weights, layer scales) take no weight decay."""
    return param.ndim > 1 and not name.endswith(".bias")


def param_groups(
    head: nn.Module,
    blocks: Sequence[nn.Module],
    backbone: nn.Module,
    lr: float,
    weight_decay: float,
    backbone_lr_mult: float = 1.0,
    layer_decay: float = 1.0,
) -> list[dict[str, Any]]:
    """AdamW parameter groups: the head at ``lr``; backbone block ``i`` of ``n`` (bottom
    to top) at ``lr * backbone_lr_mult * layer_decay ** (n - 1 - i)``; backbone parameters
    outside every block (a final norm, a pooler) with the top block.

    Pitfalls it addresses:
      * One learning rate for all: the head (random) needs a large one, pretrained
        weights a small one, or they forget what they learnt (``backbone_lr_mult``).
      * Low layers hold generic features and should move least (``layer_decay`` < 1,
        layer-wise lr decay as in BEiT/ELECTRA fine-tuning).
      * Weight decay on biases and norm scales shrinks them toward 0 for no benefit and
        hurts fine-tuning: they go to a group with ``weight_decay=0``.
      * A parameter shared by two modules (tied weights) in two groups makes torch raise:
        each parameter is placed once, in the first place it is met.

    Every group carries ``initial_lr`` so a scheduler built later scales each group from
    its own rate.
    """
    check_range("backbone_lr_mult", backbone_lr_mult, 0.0, 10.0)
    check_range("layer_decay", layer_decay, 0.0, 1.0)
    seen: set[int] = set()
    groups: list[dict[str, Any]] = []

    def add(module: nn.Module, rate: float, tag: str) -> None:
        buckets: dict[bool, list[nn.Parameter]] = {True: [], False: []}
        for name, param in module.named_parameters():
            if id(param) in seen:
                continue
            seen.add(id(param))
            buckets[_decays(name, param)].append(param)
        for decays, params in buckets.items():
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr": rate,
                        "initial_lr": rate,
                        "weight_decay": weight_decay if decays else 0.0,
                        "name": f"{tag}{'' if decays else '.no_decay'}",
                    }
                )

    n = len(blocks)
    add(head, lr, "head")
    for i in reversed(range(n)):  # top first: a shared parameter goes with the higher block
        add(blocks[i], lr * backbone_lr_mult * layer_decay ** (n - 1 - i), f"block{i}")
    add(backbone, lr * backbone_lr_mult, "backbone.rest")
    return groups


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup_steps``, then cosine down to ``min_lr_ratio`` of each
    group's own rate at ``total_steps`` (a ``LambdaLR``, stepped once per optimizer step).

    Pitfalls it addresses:
      * Adam's second-moment estimates are poor in the first steps, and a full learning
        rate then (with a random head) disturbs the pretrained weights: warm up.
      * ``CosineAnnealingLR(eta_min=...)`` takes one absolute floor for every group, which
        is wrong for per-layer rates; a multiplier keeps each group's ratio.
      * Warmup starting at exactly 0 wastes a step: step ``s`` of the warmup has
        ``(s + 1) / (warmup_steps + 1)`` of the rate.
    """
    warmup_steps = max(int(warmup_steps), 0)
    total_steps = max(int(total_steps), warmup_steps + 1)
    decay_steps = total_steps - warmup_steps

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min((step - warmup_steps) / decay_steps, 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def finetune_optimizers(
    trainer: Any,
    groups: list[dict[str, Any]],
    warmup_epochs: float,
    min_lr_ratio: float = 0.0,
) -> dict[str, Any]:
    """``configure_optimizers``' answer: AdamW over ``groups`` and the per-step warmup +
    cosine schedule, sized from the Trainer's own step count.

    Pitfall it addresses: a schedule sized in epochs but stepped per batch (or the other
    way round) ends far too early or never decays; the step count comes from
    ``trainer.estimated_stepping_batches`` (epochs x batches, after ``limit_train_batches``
    and gradient accumulation), and warmup epochs are converted with the same rate.
    """
    check_range("warmup_epochs", warmup_epochs, 0.0, 1e6)
    optimizer = torch.optim.AdamW(groups)
    total = trainer.estimated_stepping_batches
    if not math.isfinite(total):
        raise ConfigError(
            "config key `trainer.max_epochs`: the warmup + cosine schedule needs a finite run; "
            "set trainer.max_epochs."
        )
    epochs = max(int(trainer.max_epochs or 1), 1)
    warmup = round(warmup_epochs * total / epochs)
    scheduler = warmup_cosine(optimizer, warmup, int(total), min_lr_ratio)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
    }


class ClassifierHead(nn.Sequential):
    """Dropout, then a linear layer from the backbone's features to the task's outputs.

    Pitfalls it addresses:
      * A head with default init can start with large logits whose gradients disturb the
        backbone: weights start small (std 0.01) and biases at 0, so the first loss is
        close to log(classes).
      * Few examples and a big feature vector overfit the head: ``dropout`` before it.
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        check_range("head_dropout", dropout, 0.0, 0.95)
        linear = nn.Linear(in_features, out_features)
        nn.init.normal_(linear.weight, std=0.01)
        nn.init.zeros_(linear.bias)
        super().__init__(nn.Dropout(dropout), linear)


def train_loss(
    outputs: torch.Tensor, targets: torch.Tensor, task: str, label_smoothing: float = 0.0
) -> torch.Tensor:
    """The training loss: cross-entropy with ``label_smoothing`` (targets may be class
    indices or mixed soft targets ``[B, C]``), or MSE for regression.

    Pitfall it addresses: an over-confident fine-tuned classifier (few examples, many
    parameters) is badly calibrated; label smoothing keeps its logits bounded. Only the
    training loss is smoothed: validation and test use ``eval_loss``, so ``val_loss``
    stays a true log-loss, comparable between trials with different smoothing.
    """
    if task == "regression":
        return F.mse_loss(outputs.squeeze(-1), targets.float())
    check_range("label_smoothing", label_smoothing, 0.0, 0.5)
    return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)


def eval_loss(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Validation/test loss: plain cross-entropy (or MSE), never smoothed."""
    if task == "regression":
        return F.mse_loss(outputs.squeeze(-1), targets.float())
    return F.cross_entropy(outputs, targets)


def loader_targets(loader: Any) -> torch.Tensor:
    """The targets of a training loader's rows: its dataset's ``targets`` attribute through
    any ``Subset`` (hpo's folds: hpo.data.images, hpo.data.text), else read from its
    batches' second items."""
    dataset, rows = getattr(loader, "dataset", None), None
    while isinstance(dataset, Subset):
        picked = list(dataset.indices)
        rows = picked if rows is None else [picked[i] for i in rows]
        dataset = dataset.dataset
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        values = torch.as_tensor([float(v) for v in targets], dtype=torch.float32)
        return values if rows is None else values[torch.as_tensor(rows, dtype=torch.long)]
    return torch.cat([torch.as_tensor(batch[1]).float().reshape(-1) for batch in loader])


class TargetScaling:
    """Mixin for regression heads: the head predicts the standardised value and
    ``scale_output`` maps it back, with the mean and spread of the rows the module is
    fitted on (a fold's training part, or the refit's rows: never validation or test
    rows), measured when training starts and saved with the weights (buffers), so the
    checkpoint and model.onnx give values in the target's units.

    Pitfall it addresses: a fresh head starts near 0; a target in the thousands (or 4.5 on
    average) would spend the whole budget moving the head's bias, and the fine-tuning
    rates that suit classification look broken for regression.
    """

    task: str

    def init_target_scaling(self) -> None:
        if self.task == "regression":
            self.register_buffer("target_mean", torch.zeros(()))
            self.register_buffer("target_std", torch.ones(()))
            self.register_buffer("target_fitted", torch.zeros((), dtype=torch.bool))

    def on_train_start(self) -> None:
        if self.task != "regression" or bool(self.target_fitted):
            return  # a resumed fold keeps the statistics of its checkpoint
        values = loader_targets(self.trainer.train_dataloader)
        spread = float(values.std()) if len(values) > 1 else 0.0
        self.target_mean.fill_(float(values.mean()))
        self.target_std.fill_(spread if spread > 1e-8 else 1.0)
        self.target_fitted.fill_(True)

    def scale_output(self, outputs: torch.Tensor) -> torch.Tensor:
        if self.task != "regression":
            return outputs
        return outputs * self.target_std + self.target_mean


class FreezeHooks:
    """Mixin for a LightningModule with a ``freeze`` (``FreezeSchedule``) attribute: the
    schedule is applied at every training epoch start (``current_epoch`` is restored from
    a checkpoint, so a resumed fold freezes as it would have), and ``train()`` keeps
    frozen BatchNorms in eval mode."""

    freeze: FreezeSchedule

    def on_train_epoch_start(self) -> None:
        self.freeze.apply(self.current_epoch)

    def train(self, mode: bool = True):
        module = super().train(mode)
        if mode and getattr(self, "freeze", None) is not None:
            self.freeze.keep_frozen_norms_eval()
        return module
