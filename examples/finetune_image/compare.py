"""Fine-tuned vs from scratch at the same budget, on the face / non-face set.

    python -m examples.finetune_image.compare [--epochs 6] [--seeds 2] [--out DIR]

Both runs train the same architecture (the backbone that ``pretrain.py`` saved) with the
same hyperparameters, epochs and seeds, on the same 160 training images, and are scored
on the same 40 held-out test images (the split ``hpo sweep`` cuts: test_size 0.2, seed 0,
stratified). The only difference is ``pretrained``: the texture-pretrained weights, or
the same architecture randomly initialised. Prints one line per seed and the means.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from examples.finetune_image.pretrain import main as prepare
from hpo.data.datamodule import module_data, rows_loader
from hpo.data.images import ImageFolderDataModule
from hpo.data.splits import holdout_split
from hpo.models.finetune.image import ImageFinetuner

SETTINGS = dict(lr=3e-3, backbone_lr_mult=0.3, warmup_epochs=1.0, weight_decay=0.01)


def fit_and_score(weights: Path, faces: Path, pretrained: bool, epochs: int, seed: int):
    """Train on the non-test rows, return (test accuracy, test log loss, seconds)."""
    L.seed_everything(seed, workers=True, verbose=False)
    dm = ImageFolderDataModule(path=str(faces), batch_size=32, processor=str(weights))
    data = module_data(dm)
    rest, test = holdout_split(data.labels, 0.2, "classification", 0, None)
    model = ImageFinetuner(
        weights=str(weights), pretrained=pretrained, num_classes=len(dm.classes), **SETTINGS
    )
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(
        model, train_dataloaders=rows_loader(data.dataset, rest, data.train_loader, True, seed)
    )
    seconds = time.perf_counter() - started
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y in rows_loader(data.eval_dataset, test, data.eval_loader, False):
            logits.append(model(x))
            labels.append(y)
    logits, labels = torch.cat(logits), torch.cat(labels)
    accuracy = float((logits.argmax(-1) == labels).float().mean())
    log_loss = float(torch.nn.functional.cross_entropy(logits, labels))
    return accuracy, log_loss, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/finetune_image")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    prepare(["--out", str(out)])
    weights, faces = out / "resnet-textures", out / "faces"
    results = {True: [], False: []}
    for seed in range(args.seeds):
        for pretrained in (True, False):
            acc, loss, seconds = fit_and_score(weights, faces, pretrained, args.epochs, seed)
            results[pretrained].append((acc, loss))
            name = "fine-tuned  " if pretrained else "from scratch"
            print(
                f"seed {seed} {name}: test accuracy {acc:.3f}, log loss {loss:.3f} ({seconds:.0f} s)"
            )
    for pretrained, rows in results.items():
        acc, loss = np.mean(rows, axis=0)
        name = "fine-tuned  " if pretrained else "from scratch"
        print(f"mean {name}: test accuracy {acc:.3f}, log loss {loss:.3f} over {len(rows)} seeds")


if __name__ == "__main__":
    main()
