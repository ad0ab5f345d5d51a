"""Image backbones by name, from local weights only (nothing downloads).

* ``hf`` (also ``transformers``): a transformers vision model saved with
  ``save_pretrained`` (``config.json`` + weights) in the directory ``model.weights``:
  ResNet, ConvNeXt/ConvNeXtV2, RegNet, ViT, ... (``AutoModel``; these need no
  torchvision). This is the one that works on every install.
* ``torchvision:NAME`` or ``timm:NAME`` (a bare ``NAME`` tries torchvision, then timm):
  the architecture from that library, the weights from ``model.weights`` (a ``.pth`` /
  ``.safetensors`` state dict). Imported only when asked for; without the library the
  error names ``model.backbone`` and the extra to install (``hpo[vision]``).

Each returns a ``Backbone``: the module (images in, pooled features out), the feature
width, the blocks bottom to top (for freezing and layer-wise lr decay) and whether it
has drop-path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo.errors import ConfigError

VISION_EXTRA = "pip install 'hpo[vision]' (torchvision and timm)"


@dataclass
class Backbone:
    module: nn.Module
    features: int
    blocks: list[nn.Module]
    drop_path: bool  # whether model.drop_path applies


def check_weights(weights: str | None, pretrained: bool, need_dir: bool) -> Path | None:
    """The weights path, or one ConfigError naming ``model.weights``."""
    if not weights:
        if need_dir:
            raise ConfigError(
                "config key `model.weights`: model.backbone=hf needs a local save_pretrained "
                "directory (its config.json gives the architecture, also with "
                "model.pretrained=false). Nothing is downloaded."
            )
        if pretrained:
            raise ConfigError(
                "config key `model.weights`: set it to the local pretrained weights (a "
                "save_pretrained directory, or a .pth file), or train from scratch with "
                "model.pretrained=false. Nothing is downloaded."
            )
        return None
    path = Path(str(weights)).expanduser()
    if not path.exists():
        raise ConfigError(
            f"config key `model.weights`: {path} does not exist; point it at the local "
            "pretrained weights. Nothing is downloaded."
        )
    if need_dir and not (path / "config.json").is_file():
        raise ConfigError(
            f"config key `model.weights`: {path} is not a transformers save_pretrained "
            "directory (no config.json there); save one with model.save_pretrained(DIR)."
        )
    return path


def transformers_backbone(weights: str | None, pretrained: bool, drop_path: float) -> Backbone:
    """A transformers vision model from a save_pretrained directory; with
    ``pretrained=false`` its architecture only (config.json), randomly initialised."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # k folds x trials would each draw a loading bar

    path = check_weights(weights, True, need_dir=True)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    has_drop_path = hasattr(config, "drop_path_rate")
    if drop_path and not has_drop_path:
        raise ConfigError(
            f"config key `model.drop_path`: {config.model_type} has no drop-path; set "
            "model.drop_path=0 (use model.head_dropout instead)."
        )
    if has_drop_path:
        config.drop_path_rate = float(drop_path)
    if pretrained:
        model = AutoModel.from_pretrained(path, config=config, local_files_only=True)
    else:
        model = AutoModel.from_config(config)
    sizes = getattr(config, "hidden_sizes", None)
    features = int(sizes[-1]) if sizes else int(config.hidden_size)
    return Backbone(HFFeatures(model), features, hf_blocks(model), has_drop_path)


def hf_blocks(model: nn.Module) -> list[nn.Module]:
    """Stem then stages (CNNs: ``embedder``/``embeddings`` + ``encoder.stages``; ViT-like:
    ``embeddings`` + ``encoder.layer``)."""
    stem = getattr(model, "embedder", None) or getattr(model, "embeddings", None)
    encoder = getattr(model, "encoder", None)
    stages = getattr(encoder, "stages", None) or getattr(encoder, "layer", None)
    if stem is None or stages is None:
        return [model]  # unknown layout: one block (freezing is all or nothing)
    return [stem, *stages]


class HFFeatures(nn.Module):
    """``pixel_values -> [B, features]`` for a transformers vision model (its pooled
    output, else the mean of its last hidden state over positions)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            hidden = out.last_hidden_state
            return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))
        return pooled.flatten(1)


class LibraryFeatures(nn.Module):
    """A torchvision/timm classifier with its last linear layer replaced by identity."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).flatten(1)


def strip_classifier(model: nn.Module) -> int:
    """Replace the last ``nn.Linear`` by identity; returns its input width."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ConfigError("config key `model.backbone`: the backbone has no linear classifier.")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    features = getattr(parent, child).in_features
    setattr(parent, child, nn.Identity())
    return int(features)


def load_state(model: nn.Module, path: Path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, unexpected = model.load_state_dict(state, strict=False)
    useful = [k for k in missing if not k.endswith(("fc.weight", "fc.bias"))]
    if len(useful) > len(state) // 2:
        raise ConfigError(
            f"config key `model.weights`: {path} does not fit this backbone ({len(useful)} "
            f"missing tensors, e.g. {useful[0]}); use the weights of model.backbone's "
            "architecture."
        )


def library_backbone(
    library: str, name: str, weights: str | None, pretrained: bool, drop_path: float
) -> Backbone:
    """``torchvision`` / ``timm`` architecture ``name``, weights from a local file."""
    path = check_weights(weights, pretrained, need_dir=False)
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ConfigError(
                f"config key `model.backbone`: timm:{name} needs timm, which is not "
                f"installed; {VISION_EXTRA}, or use model.backbone=hf."
            ) from None
        if not timm.is_model(name):
            raise ConfigError(f"config key `model.backbone`: timm has no model {name!r}.")
        model = timm.create_model(name, pretrained=False, drop_path_rate=float(drop_path))
        has_drop_path = True
    else:
        try:
            import torchvision
        except ImportError:
            raise ConfigError(
                f"config key `model.backbone`: torchvision:{name} needs torchvision, which "
                f"is not installed; {VISION_EXTRA}, or use model.backbone=hf."
            ) from None
        if name not in torchvision.models.list_models():
            raise ConfigError(f"config key `model.backbone`: torchvision has no model {name!r}.")
        if drop_path:
            raise ConfigError(
                "config key `model.drop_path`: torchvision models take no drop-path rate "
                "here; set model.drop_path=0 or use a timm or hf backbone."
            )
        model = torchvision.models.get_model(name, weights=None)
        has_drop_path = False
    if path is not None and pretrained:
        load_state(model, path)
    features = strip_classifier(model)
    blocks = [m for m in model.children() if any(True for _ in m.parameters())]
    return Backbone(LibraryFeatures(model), features, blocks, has_drop_path)


def available(library: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(library) is not None


def build_backbone(name: str, weights: str | None, pretrained: bool, drop_path: float) -> Backbone:
    """The backbone ``model.backbone`` names (see the module docstring)."""
    if name in ("hf", "transformers", "auto"):
        return transformers_backbone(weights, pretrained, drop_path)
    library, _, arch = name.partition(":")
    if arch and library in ("timm", "torchvision"):
        return library_backbone(library, arch, weights, pretrained, drop_path)
    if arch:
        raise ConfigError(
            f"config key `model.backbone`: unknown library {library!r} in {name!r}; use hf, "
            "torchvision:NAME or timm:NAME."
        )
    for library in ("torchvision", "timm"):
        if available(library):
            try:
                return library_backbone(library, name, weights, pretrained, drop_path)
            except ConfigError as exc:
                if "has no model" not in str(exc):
                    raise
    raise ConfigError(
        f"config key `model.backbone`: unknown backbone {name!r}: "
        + (
            "neither torchvision nor timm has it"
            if available("torchvision") or available("timm")
            else f"torchvision and timm are not installed ({VISION_EXTRA})"
        )
        + "; model.backbone=hf loads a transformers vision model saved with save_pretrained."
    )


def describe(backbone: Backbone) -> dict[str, Any]:
    return {"features": backbone.features, "blocks": len(backbone.blocks)}
