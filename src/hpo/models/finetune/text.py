"""`model=finetune_text`: a transformers encoder from a local directory, fine-tuned with a
new head for the task's classes (or one output for regression), on the Lightning path.

The backbone is ``AutoModel`` from ``model.pretrained`` (a folder written by
``save_pretrained``; ``local_files_only``: nothing downloads). Its output is pooled (the
first token's state, or the mean over the attention mask) and fed to the shared
``ClassifierHead``. The fine-tuning keys are common.py's (freeze schedule, backbone lr
multiplier, layer-wise lr decay, warmup + cosine, weight decay, head dropout, label
smoothing); ``lora_r`` > 0 trains low-rank adapters through peft instead of the backbone's
weights (``lora_alpha``, ``lora_dropout``; the target modules are peft's per-architecture
choice (``query``/``value`` for BERT), else every linear layer).

The backbone's blocks, bottom to top, are its embeddings and its transformer layers (the
``ModuleList`` with ``num_hidden_layers`` entries), so ``trainable_blocks=2`` trains the
top two layers and ``layer_decay`` scales each layer's rate.

``pretrained_weights=false`` builds the same architecture from the folder's config.json
with random weights: the from-scratch baseline at the same budget (and how ``hpo predict``
rebuilds an exported model before loading its checkpoint).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from hpo.errors import ConfigError
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

POOLINGS = ("cls", "mean")


def check_pretrained(directory: Any, key: str = "model.pretrained") -> Path:
    """The local folder a backbone loads from, or a ConfigError naming ``key``."""
    path = Path(str(directory)) if directory not in (None, "", "???") else None
    if path is None or not (path / "config.json").is_file():
        what = "is not set" if path is None else f"{str(path)!r} has no config.json"
        raise ConfigError(
            f"config key `{key}`: {what}; point it at a folder written by save_pretrained() "
            "(examples/finetune_text/pretrain.py makes one). Nothing is downloaded."
        )
    return path


def transformer_layers(backbone: nn.Module, count: int) -> list[nn.Module]:
    """The backbone's transformer layers: the ModuleList holding ``count`` modules (the
    longest such list, for encoders that nest one)."""
    lists = [m for m in backbone.modules() if isinstance(m, nn.ModuleList) and len(m) == count]
    if not lists:
        raise ConfigError(
            f"config key `model.pretrained`: {type(backbone).__name__} has no list of its "
            f"{count} layers; hpo cannot place the freeze schedule and layer-wise decay."
        )
    return list(lists[0])


def choose_lora_targets(model_type: str, given: Any) -> Any:
    """peft's target modules for the architecture (its public per-model mapping), the
    user's ``model.lora_targets``, or every linear layer."""
    if given:
        return list(given) if not isinstance(given, str) else given
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING

    return MAPPING.get(model_type, "all-linear")


class FinetuneTextClassifier(FreezeHooks, TargetScaling, L.LightningModule):
    """A pretrained transformers encoder with a new head.

    Args:
        pretrained: the folder written by ``save_pretrained`` (config.json, weights; its
            tokenizer is what ``data=text`` tokenizes with).
        num_classes: the head's outputs (``auto``: filled in by hpo from the data).
        task: ``classification`` or ``regression`` (``auto``: from the data).
        pretrained_weights: false: the same architecture with random weights.
        pooling: ``cls`` (first token) or ``mean`` (over the attention mask).
        lr: the head's learning rate (AdamW).
        backbone_lr_mult: the backbone's rate is ``lr * backbone_lr_mult``.
        layer_decay: layer ``i`` of ``n`` (embeddings first) trains at
            ``layer_decay ** (n - 1 - i)`` of the backbone's rate.
        weight_decay: AdamW weight decay (none on biases and norms).
        warmup_epochs: linear warmup, then cosine to ``min_lr_ratio`` of each rate.
        unfreeze_epoch: epochs the backbone stays frozen (the head trains alone).
        trainable_blocks: top blocks that train once unfrozen (-1: all; 0: linear probe).
        head_dropout: dropout before the head.
        label_smoothing: of the training loss (validation loss stays plain).
        lora_r: LoRA rank (0: off, the backbone's own weights train).
        lora_alpha, lora_dropout: LoRA's scale and dropout.
        lora_targets: module names for LoRA (null: peft's choice for the architecture).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        num_classes: int | str = "auto",
        task: str = "auto",
        pretrained_weights: bool = True,
        pooling: str = "mean",
        lr: float = 1e-3,
        backbone_lr_mult: float = 0.3,
        layer_decay: float = 1.0,
        weight_decay: float = 0.01,
        warmup_epochs: float = 0.5,
        min_lr_ratio: float = 0.0,
        unfreeze_epoch: int = 0,
        trainable_blocks: int = -1,
        head_dropout: float = 0.1,
        label_smoothing: float = 0.0,
        lora_r: int = 0,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        lora_targets: Any = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        path = check_pretrained(pretrained)
        if num_classes == "auto" or task == "auto":
            raise ConfigError(
                "config key `model.num_classes`: `auto` is filled in from data=text (or any "
                "DataModule with labels) before training; set it (and model.task) by hand "
                "to build the module outside a sweep."
            )
        if task not in ("classification", "regression"):
            raise ConfigError(
                f"config key `model.task`: classification or regression, not {task!r}."
            )
        if pooling not in POOLINGS:
            raise ConfigError(
                f"config key `model.pooling`: one of {', '.join(POOLINGS)}, not {pooling!r}."
            )
        check_range("lora_r", lora_r, 0, 4096)
        self.save_hyperparameters()
        self.task, self.pooling = task, pooling
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        eager = {"attn_implementation": "eager"}  # traces to ONNX; the same numbers as sdpa
        backbone = (
            AutoModel.from_pretrained(str(path), local_files_only=True, **eager)
            if pretrained_weights
            else AutoModel.from_config(config, **eager)
        )
        backbone.train()  # from_pretrained returns it in eval mode; Lightning sets modes
        layers = transformer_layers(backbone, int(config.num_hidden_layers))
        embeddings = getattr(backbone, "embeddings", None) or backbone.get_input_embeddings()
        self.lora = int(lora_r) > 0
        if self.lora:
            from peft import LoraConfig, get_peft_model

            check_range("lora_dropout", lora_dropout, 0.0, 0.9)
            backbone = get_peft_model(
                backbone,
                LoraConfig(r=int(lora_r), lora_alpha=float(lora_alpha), lora_dropout=float(lora_dropout),
                           target_modules=choose_lora_targets(config.model_type, lora_targets)),
            )  # fmt: skip
        self.backbone = backbone
        self.head = ClassifierHead(
            int(config.hidden_size), int(num_classes) if task == "classification" else 1,
            head_dropout,
        )  # fmt: skip
        self.init_target_scaling()
        self.freeze = FreezeSchedule([embeddings, *layers], unfreeze_epoch, trainable_blocks)
        if task == "classification":
            k = int(num_classes)
            self.val_acc = MulticlassAccuracy(num_classes=k, average="micro")
            self.val_f1 = MulticlassF1Score(num_classes=k, average="macro")

    # -- the network ----------------------------------------------------------------
    def forward(self, input_ids: Any, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, classes]`` (or ``[B, 1]``) of a batch's ``input_ids`` and
        ``attention_mask`` (or of the batch's input dict)."""
        if isinstance(input_ids, Mapping):
            attention_mask = input_ids.get("attention_mask")
            input_ids = input_ids["input_ids"]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.scale_output(self.head(pooled))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.lora:  # the schedule acts on the adapters; the base weights stay frozen
            for name, param in self.backbone.named_parameters():
                if "lora_" not in name:
                    param.requires_grad_(False)

    # -- steps ----------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        inputs, y = batch
        loss = train_loss(self(inputs), y, self.task, float(self.hparams.label_smoothing))
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch, stage: str) -> None:
        inputs, y = batch
        outputs = self(inputs)
        self.log(f"{stage}_loss", eval_loss(outputs, y, self.task), batch_size=len(y))
        if self.task == "classification" and stage == "val":
            self.val_acc(outputs, y)
            self.val_f1(outputs, y)
            self.log("val_acc", self.val_acc, batch_size=len(y))
            self.log("val_f1_macro", self.val_f1, batch_size=len(y))

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(inputs)

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        blocks = self.freeze.blocks
        groups = param_groups(
            self.head, blocks, self.backbone, float(h.lr), float(h.weight_decay),
            float(h.backbone_lr_mult), float(h.layer_decay),
        )  # fmt: skip
        return finetune_optimizers(
            self.trainer, groups, float(h.warmup_epochs), float(h.min_lr_ratio)
        )

    # -- export ---------------------------------------------------------------------
    def export_module(self) -> nn.Module:
        """A copy for ONNX: LoRA merged into the base weights (peft's merge_and_unload)."""
        try:
            trainer = self.trainer  # not copied along: detached for the copy
        except RuntimeError:
            trainer = None
        self.trainer = None
        try:
            module = copy.deepcopy(self).cpu().eval()
        finally:
            self.trainer = trainer
        if self.lora:
            module.backbone = module.backbone.merge_and_unload()
        return module

    def export_files(self, directory: Path) -> dict[str, Any]:
        """Write what ``hpo predict`` needs beside the weights: the tokenizer files and the
        backbone's config.json (no weights: the checkpoint has them) into
        ``directory/pretrained``; returns the config keys predict sets from them."""
        from transformers import AutoConfig, AutoTokenizer

        source = str(self.hparams.pretrained)
        target = Path(directory) / "pretrained"
        AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(target)
        AutoConfig.from_pretrained(source, local_files_only=True).save_pretrained(target)
        return {
            "files": {"model.pretrained": "pretrained", "data.tokenizer": "pretrained"},
            "settings": {"model.pretrained_weights": False},
            "input": "text",
        }
