"""Fine-tuned vs from scratch at several label budgets: the same small BERT, the same
split, the same number of optimizer steps and the same hyperparameter search, once from the
pretrained weights and once from random weights (``pretrained_weights=False``), on the
docstring-topic task (corpus.py).

It uses hpo's own pieces (``data=text``'s TextDataModule and quality checks, the
``model=finetune_text`` module, a plain ``lightning.Trainer``): no sweep, so the two arms
differ only in the initial weights. The protocol:

* the test rows are a stratified 20% cut once (seed 0), after duplicate texts are dropped;
  every arm, budget and seed is scored on them and on nothing else;
* a budget of ``n`` labelled docstrings is a stratified sample of ``n`` of the other rows
  (``all``: all of them), drawn per seed; both arms get the same sample;
* per arm, budget and seed the rate is chosen on a validation cut (a stratified 25% of the
  sample): every ``(lr, backbone_lr_mult)`` of ``GRID`` is trained on the other 75% and
  scored on it (accuracy, then log loss), the winner is refit on the whole sample and
  scored once on the test rows. Neither arm is handicapped by the other's rate;
* every fit runs ``--steps`` optimizer steps or more (whole epochs of batches of 32; at
  least ``--min-epochs``), warmup the first 10% of them, then cosine.

Run from the repository root, after pretrain.py::

    python -m examples.finetune_text.compare --pretrained runs/pretrained/pybert
    python -m examples.finetune_text.compare --pretrained DIR --budgets 50 --seeds 0  # quick
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Subset

from examples.finetune_text.corpus import write_task_csv
from hpo.data.text import TextDataModule
from hpo.models.finetune.text import FinetuneTextClassifier

GRID = [{"lr": 1e-3, "backbone_lr_mult": 1.0}, {"lr": 4e-3, "backbone_lr_mult": 1.0},
        {"lr": 4e-3, "backbone_lr_mult": 0.25}]  # fmt: skip
FIXED = {"head_dropout": 0.1, "weight_decay": 0.01}
BATCH = 32


def fit_and_score(dm, fit_rows, score_rows, pretrained, from_pretrained, hparams, epochs,
                  seed) -> dict:  # fmt: skip
    """Train one module on ``fit_rows`` for ``epochs`` and score it on ``score_rows``."""
    L.seed_everything(seed, workers=True, verbose=False)
    model = FinetuneTextClassifier(
        pretrained, num_classes=len(dm.classes), task="classification",
        pretrained_weights=from_pretrained, warmup_epochs=0.1 * epochs, **FIXED, **hparams,
    )  # fmt: skip
    collate = dm.train_dataloader().collate_fn
    train = DataLoader(Subset(dm.dataset, fit_rows.tolist()), batch_size=BATCH, shuffle=True,
                       collate_fn=collate, generator=torch.Generator().manual_seed(seed))  # fmt: skip
    score = DataLoader(Subset(dm.dataset, score_rows.tolist()), batch_size=128,
                       collate_fn=collate)  # fmt: skip
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)  # fmt: skip
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=train)
    fit_s = time.perf_counter() - started
    model.eval()
    probs, truth = [], []
    with torch.no_grad():
        for inputs, y in score:
            probs.append(torch.softmax(model(inputs), 1).numpy())
            truth.append(y.numpy())
    probs, truth = np.concatenate(probs), np.concatenate(truth)
    preds = probs.argmax(1)
    return {
        "accuracy": float(accuracy_score(truth, preds)),
        "f1_macro": float(f1_score(truth, preds, average="macro")),
        "log_loss": float(log_loss(truth, probs, labels=range(len(dm.classes)))),
        "fit_s": round(fit_s, 1),
    }


def epochs_for(rows: int, steps: int, min_epochs: int) -> int:
    """Whole epochs that make at least ``steps`` optimizer steps on ``rows`` rows."""
    return max(min_epochs, math.ceil(steps / math.ceil(rows / BATCH)))


def run_point(dm, labels, sample, test_rows, pretrained, from_pretrained, steps, min_epochs,
              seed) -> dict:  # fmt: skip
    """One arm at one budget and seed: the rate chosen on a validation cut, then the refit."""
    fit, val = train_test_split(sample, test_size=0.25, stratify=labels[sample],
                                random_state=seed)  # fmt: skip
    epochs = epochs_for(len(sample), steps, min_epochs)
    scored = []
    for hparams in GRID:
        result = fit_and_score(dm, fit, val, pretrained, from_pretrained, hparams, epochs, seed)
        scored.append((-result["accuracy"], result["log_loss"], hparams))
    best = min(scored, key=lambda s: (s[0], s[1]))[2]
    test = fit_and_score(dm, sample, test_rows, pretrained, from_pretrained, best, epochs, seed)
    return {"seed": seed, "epochs": epochs, "chosen": best,
            "val_accuracy": {json.dumps(h): -a for a, _, h in scored}, **test}  # fmt: skip


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in ("accuracy", "f1_macro", "log_loss"):
        values = np.asarray([r[key] for r in runs])
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(
            values) > 1 else 0.0, "min": float(values.min()), "max": float(values.max())}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", required=True, help="pretrain.py's --out folder")
    parser.add_argument(
        "--budgets",
        nargs="+",
        default=["50", "100", "200", "all"],
        help="labelled training docstrings per point (`all`: every one)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["fine-tuned", "from scratch"],
                        choices=["fine-tuned", "from scratch"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per fit (min)")
    parser.add_argument("--min-epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "docstring_topics.csv"
        write_task_csv(csv)
        dm = TextDataModule(str(csv), text="text", target="topic", tokenizer=args.pretrained,
                            max_length=args.max_length, batch_size=BATCH)  # fmt: skip
        dm.setup("fit")
    labels = np.asarray(dm.dataset.targets)
    pool, test_rows = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0
    )
    result = {"rows": len(labels), "pool_rows": len(pool), "test_rows": len(test_rows),
              "classes": dm.classes, "grid": GRID, "fixed": FIXED, "steps": args.steps,
              "pretrained": str(args.pretrained),
              "majority_accuracy": float(np.mean(labels[test_rows] == np.bincount(
                  labels[pool]).argmax())),
              "points": {}}  # fmt: skip
    started = time.perf_counter()
    for budget in args.budgets:
        point = result["points"].setdefault(budget, {})
        for name in args.arms:
            runs = []
            for seed in args.seeds:
                sample = (
                    pool
                    if budget == "all"
                    else train_test_split(
                        pool, train_size=int(budget), stratify=labels[pool], random_state=seed
                    )[0]
                )
                runs.append(run_point(dm, labels, np.sort(sample), test_rows, args.pretrained,
                                      name == "fine-tuned", args.steps, args.min_epochs, seed))  # fmt: skip
            point[name] = {"runs": runs, **summary(runs)}
            acc = point[name]["accuracy"]
            print(f"{budget} labelled, {name}: test accuracy {acc['mean']:.3f} +- "
                  f"{acc['std']:.3f} over seeds {args.seeds} "
                  f"({time.perf_counter() - started:.0f} s so far)", flush=True)  # fmt: skip
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
