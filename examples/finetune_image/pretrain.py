"""Pretrain a small transformers ResNet on texture patches (skimage.data), save it with
``save_pretrained``, and write the face / non-face ImageFolder to fine-tune it on.

    python -m examples.finetune_image.pretrain            # writes data/finetune_image/
    python -m examples.finetune_image.pretrain --epochs 6 --out DIR

Writes, under ``--out`` (default ``data/finetune_image``):

* ``textures/``: the pretraining ImageFolder (8 classes x 200 patches of 32x32).
* ``faces/``: the fine-tuning ImageFolder (skimage's lfw_subset, 200 images of 25x25).
* ``resnet-textures/``: the pretrained backbone (``config.json``, ``model.safetensors``,
  ``preprocessor_config.json``), what ``model.weights`` points at. With
  ``model.pretrained=false`` the same directory gives the architecture only: the
  from-scratch baseline at the same budget.

Nothing downloads: both image sets ship inside scikit-image.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch

from examples.finetune_image.data import PATCH, TEXTURES, write_faces_folder, write_texture_folder
from hpo.data.images import ImageFolderDataModule
from hpo.models.finetune.image import ImageFinetuner

MEAN, STD = 0.45, 0.25  # grayscale pixels in [0, 1]: roughly those of both image sets


def tiny_resnet_config():
    """A real ResNet (transformers' ResNetModel, basic blocks), small enough for a CPU:
    about 78k parameters, one channel, 32x32 inputs."""
    from transformers import ResNetConfig

    return ResNetConfig(
        num_channels=1,
        embedding_size=16,
        hidden_sizes=[16, 32, 64],
        depths=[1, 1, 1],
        layer_type="basic",
    )


def write_architecture(directory: Path) -> Path:
    """config.json and preprocessor_config.json of the backbone, without weights."""
    directory.mkdir(parents=True, exist_ok=True)
    tiny_resnet_config().save_pretrained(directory)
    write_processor(directory)
    return directory


def write_processor(directory: Path) -> None:
    """The backbone's own input description (transformers' preprocessor_config.json)."""
    processor = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": PATCH, "width": PATCH},
        "do_normalize": True,
        "image_mean": [MEAN],
        "image_std": [STD],
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")


def pretrain(out: Path, epochs: int, seed: int = 0) -> Path:
    """Train the tiny ResNet to tell the 8 textures apart; save its backbone."""
    textures = write_texture_folder(out / "textures")
    weights = out / "resnet-textures"
    arch = write_architecture(out / "resnet-architecture")
    L.seed_everything(seed, workers=True, verbose=False)
    data = ImageFolderDataModule(path=str(textures), batch_size=64, processor=str(arch))
    model = ImageFinetuner(
        weights=str(arch), pretrained=False, num_classes=len(TEXTURES), lr=3e-3,
        backbone_lr_mult=1.0, warmup_epochs=0.5,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(model, datamodule=data)
    model.eval()
    with torch.no_grad():
        correct = total = 0
        for x, y in data.val_dataloader():
            correct += int((model(x).argmax(-1) == y).sum())
            total += len(y)
    model.backbone.model.save_pretrained(weights)
    write_processor(weights)
    print(
        f"pretrained on {total} texture patches for {epochs} epochs in "
        f"{time.perf_counter() - started:.0f} s: train accuracy {correct / total:.3f}; "
        f"saved to {weights}"
    )
    return weights


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/finetune_image", help="where everything goes")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    faces = write_faces_folder(out / "faces")
    weights = out / "resnet-textures"
    if not (weights / "config.json").is_file():
        pretrain(out, args.epochs)
    print(f"fine-tune data: {faces}\nweights: {weights}")


if __name__ == "__main__":
    main()
