"""Train and test LitTextClassifier with a plain ``lightning.Trainer``: no hpo involved.

Run from the repository root::

    python -m examples.text_classifier.train_plain                 # char CNN, 10 epochs
    python -m examples.text_classifier.train_plain --encoder gru --tokenizer word
    python -m examples.text_classifier.train_plain --fast          # a few seconds, a smoke run
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import lightning as L

from examples.text_classifier.data import EmojiNamesDataModule
from examples.text_classifier.model import LitTextClassifier


def majority_baseline(train_targets: list[int], test_targets: list[int]) -> float:
    """Test accuracy of always predicting the most common train class."""
    majority = Counter(train_targets).most_common(1)[0][0]
    return sum(t == majority for t in test_targets) / len(test_targets)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Fit, then test; print and return wall time, test accuracy and the majority baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fast", action="store_true", help="1 epoch on a few batches")
    parser.add_argument("--encoder", choices=["cnn", "gru"], default="cnn")
    parser.add_argument("--tokenizer", choices=["char", "word"], default="char")
    parser.add_argument(
        "--root-dir", default="runs/plain/text_classifier", help="logs, checkpoints"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    L.seed_everything(args.seed, workers=True, verbose=False)
    dm = EmojiNamesDataModule(batch_size=args.batch_size, tokenizer=args.tokenizer, seed=args.seed)
    # The embedding is sized by the vocabulary's cap, so the model can be built before setup().
    model = LitTextClassifier(
        vocab_size=dm.hparams.vocab_size, num_classes=dm.num_classes, encoder=args.encoder
    )
    limits = (
        {"max_epochs": 1, "limit_train_batches": 5, "limit_val_batches": 2}
        if args.fast
        else {"max_epochs": args.epochs}
    )
    trainer = L.Trainer(default_root_dir=args.root_dir, deterministic=True, **limits)

    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_s = time.perf_counter() - start
    test_acc = trainer.test(model, datamodule=dm, verbose=False)[0]["test_acc"]
    wall_s = time.perf_counter() - start

    result = {
        "fit_s": fit_s,
        "wall_s": wall_s,
        "test_acc": float(test_acc),
        "majority_baseline_acc": majority_baseline(dm.train_set.targets, dm.test_set.targets),
    }
    print(" ".join(f"{k}={v:.4f}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
