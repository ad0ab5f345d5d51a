"""Fine-tuned vs from scratch: the same small BERT, the same hyperparameters, the same
split and the same budget (epochs), once from the pretrained weights and once from random
weights (``pretrained_weights=False``), on the docstring-topic task (corpus.py).

It uses hpo's own pieces (``data=text``'s TextDataModule and quality checks, the
``model=finetune_text`` module, a plain ``lightning.Trainer``): no sweep, so the two arms
differ only in the initial weights. The test rows are a stratified 20% cut once (seed 0),
after duplicate texts are dropped; every arm is scored on them, for each of ``--seeds``.

Run from the repository root, after pretrain.py::

    python -m examples.finetune_text.compare --pretrained runs/pretrained/pybert
    python -m examples.finetune_text.compare --pretrained DIR --epochs 2 --seeds 0   # quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Subset

from examples.finetune_text.corpus import write_task_csv
from hpo.data.text import TextDataModule
from hpo.models.finetune.text import FinetuneTextClassifier

HPARAMS = {"lr": 2e-3, "backbone_lr_mult": 0.5, "warmup_epochs": 0.5, "head_dropout": 0.1,
           "weight_decay": 0.01}  # fmt: skip


def run_arm(dm, train_rows, test_rows, pretrained, from_pretrained, epochs, seed) -> dict:
    L.seed_everything(seed, workers=True, verbose=False)
    model = FinetuneTextClassifier(
        pretrained, num_classes=len(dm.classes), task="classification",
        pretrained_weights=from_pretrained, **HPARAMS,
    )  # fmt: skip
    loader = dm.train_dataloader()
    train = DataLoader(Subset(dm.dataset, train_rows.tolist()), batch_size=dm.batch_size,
                       shuffle=True, collate_fn=loader.collate_fn,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    test = DataLoader(Subset(dm.dataset, test_rows.tolist()), batch_size=64,
                      collate_fn=loader.collate_fn)  # fmt: skip
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)  # fmt: skip
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=train)
    fit_s = time.perf_counter() - started
    model.eval()
    preds, truth = [], []
    with torch.no_grad():
        for inputs, y in test:
            preds.append(model(inputs).argmax(1).numpy())
            truth.append(y.numpy())
    preds, truth = np.concatenate(preds), np.concatenate(truth)
    return {
        "accuracy": float(accuracy_score(truth, preds)),
        "f1_macro": float(f1_score(truth, preds, average="macro")),
        "fit_s": round(fit_s, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", required=True, help="pretrain.py's --out folder")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "docstring_topics.csv"
        write_task_csv(csv)
        dm = TextDataModule(str(csv), text="text", target="topic", tokenizer=args.pretrained,
                            max_length=args.max_length, batch_size=32)  # fmt: skip
        dm.setup("fit")
    labels = np.asarray(dm.dataset.targets)
    train_rows, test_rows = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0
    )
    result = {"rows": len(labels), "train_rows": len(train_rows), "test_rows": len(test_rows),
              "classes": dm.classes, "epochs": args.epochs, "hparams": HPARAMS,
              "majority_accuracy": float(np.mean(labels[test_rows] == np.bincount(
                  labels[train_rows]).argmax())),
              "arms": {}}  # fmt: skip
    for name, from_pretrained in (("fine-tuned", True), ("from scratch", False)):
        runs = [run_arm(dm, train_rows, test_rows, args.pretrained, from_pretrained,
                        args.epochs, seed) for seed in args.seeds]  # fmt: skip
        result["arms"][name] = {
            "runs": runs,
            "accuracy_mean": float(np.mean([r["accuracy"] for r in runs])),
            "f1_macro_mean": float(np.mean([r["f1_macro"] for r in runs])),
        }
        print(f"{name}: accuracy {result['arms'][name]['accuracy_mean']:.3f}, macro F1 "
              f"{result['arms'][name]['f1_macro_mean']:.3f} over seeds {args.seeds}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
