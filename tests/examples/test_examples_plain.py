"""The example projects run as plain Lightning code: real data, a real Trainer, no hpo."""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from examples.digits_cnn.data import (
    DigitsImageDataModule,
    ImageFolderDataset,
    write_digits_image_folder,
)
from examples.digits_cnn.model import LitDigitsCNN
from examples.text_classifier.corpus import LANGUAGES, load_emoji_names
from examples.text_classifier.data import (
    PAD_ID,
    UNK_ID,
    EmojiNamesDataModule,
    pad_collate,
    tokenize,
)
from examples.text_classifier.model import LitTextClassifier

TRAINER_KW = dict(
    max_epochs=1,
    limit_train_batches=2,
    limit_val_batches=2,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)


def _finite_metrics(trainer: L.Trainer, *names: str) -> dict[str, float]:
    metrics = {name: float(trainer.callback_metrics[name]) for name in names}
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    return metrics


def _png_rows(folder: Path) -> set[int]:
    return {int(p.stem) for p in folder.glob("*/*.png")}


# ---------------------------------------------------------------- digits_cnn


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    return write_digits_image_folder(tmp_path_factory.mktemp("digits") / "digits_images")


def test_digits_folder_holds_all_real_images_split_disjointly(digits_dir):
    from sklearn.datasets import load_digits

    assert sorted(p.name for p in digits_dir.iterdir()) == ["test", "train"]
    for split in ("train", "test"):
        assert sorted(p.name for p in (digits_dir / split).iterdir()) == [str(i) for i in range(10)]
    train, test = _png_rows(digits_dir / "train"), _png_rows(digits_dir / "test")
    assert len(train) + len(test) == 1797 and not train & test
    assert train | test == set(range(1797))
    assert len(test) == 360  # stratified 20%: each class ~36 images
    counts = Counter(ImageFolderDataset(digits_dir / "test").targets)
    assert min(counts.values()) >= 34 and max(counts.values()) <= 37

    # A PNG holds the sklearn scan it names, under its true class.
    digits = load_digits()
    path = next((digits_dir / "test").glob("*/*.png"))
    i = int(path.stem)
    assert int(path.parent.name) == digits.target[i]
    stored = np.asarray(Image.open(path))
    np.testing.assert_array_equal(stored, np.rint(digits.images[i] * 255 / 16).astype(np.uint8))


def test_digits_folder_is_never_overwritten(digits_dir):
    sentinel = digits_dir / "train" / "0" / "keep.txt"
    sentinel.write_text("x")
    try:
        write_digits_image_folder(digits_dir)
        assert sentinel.exists()
        assert not list(digits_dir.parent.glob(".*tmp-*"))  # no temp folder left behind
    finally:
        sentinel.unlink()


def test_digits_datamodule_splits_and_transforms(digits_dir):
    dm = DigitsImageDataModule(data_dir=str(digits_dir), image_size=16, seed=3)
    dm.setup("fit")
    dm.setup("test")
    train_paths = {dm.train_set.dataset.samples[i][0] for i in dm.train_set.indices}
    val_paths = {dm.val_set.dataset.samples[i][0] for i in dm.val_set.indices}
    assert len(train_paths) + len(val_paths) == 1437 and not train_paths & val_paths
    assert abs(len(val_paths) - 0.2 * 1437) <= 1
    assert {p.parent.parent.name for p in train_paths | val_paths} == {"train"}
    assert len(dm.test_set) == 360 and dm.test_set.classes == [str(i) for i in range(10)]
    assert len(dm.train_set.targets) == len(dm.train_set) and set(dm.val_set.targets) == set(
        range(10)
    )

    x, y = dm.val_set[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and 0 <= y < 10
    assert torch.equal(x, dm.val_set[0][0])  # no augmentation outside training
    torch.manual_seed(0)
    shifted = [dm.train_set[0][0] for _ in range(10)]
    assert any(not torch.equal(shifted[0], s) for s in shifted[1:])  # training is augmented

    other = DigitsImageDataModule(data_dir=str(digits_dir), seed=4)
    other.setup("fit")
    assert set(other.val_set.indices) != set(dm.val_set.indices)  # `seed` moves the val split


def test_digits_fit_test_predict_with_a_plain_trainer(digits_dir):
    L.seed_everything(0, verbose=False)
    dm = DigitsImageDataModule(data_dir=str(digits_dir), batch_size=32)
    model = LitDigitsCNN(channels=8)
    trainer = L.Trainer(**TRAINER_KW)
    trainer.fit(model, datamodule=dm)
    _finite_metrics(trainer, "train_loss", "val_loss", "val_acc")
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "step"
    assert config.scheduler.total_steps == trainer.estimated_stepping_batches == 2

    trainer.test(model, datamodule=dm, verbose=False)
    assert 0.0 <= _finite_metrics(trainer, "test_acc")["test_acc"] <= 1.0

    probs = torch.cat(trainer.predict(model, datamodule=dm))
    assert probs.shape == (360, 10)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(360))


def test_digits_train_plain_fast(digits_dir, tmp_path):
    from examples.digits_cnn import train_plain

    result = train_plain.main(
        ["--fast", "--data-dir", str(digits_dir), "--root-dir", str(tmp_path / "runs")]
    )
    assert 0.0 <= result["test_acc"] <= 1.0
    assert 0.09 < result["majority_baseline_acc"] < 0.11


# ---------------------------------------------------------------- text_classifier

# The corpus ships in the `emoji` package; without it only these tests are skipped.
needs_emoji = pytest.mark.skipif(
    importlib.util.find_spec("emoji") is None, reason="the text corpus ships in `emoji`"
)


@needs_emoji
def test_emoji_corpus_is_real_labelled_text():
    rows = load_emoji_names()
    assert len(rows) > 13000
    assert {r.language for r in rows} == set(LANGUAGES)
    by_text: dict[str, set[str]] = {}
    for r in rows:
        by_text.setdefault(r.text, set()).add(r.language)
    assert all(len(langs) == 1 for langs in by_text.values())  # no name with two labels
    assert ("medalla de oro", "es") in {(r.text, r.language) for r in rows}
    assert not any("skin tone" in r.text for r in rows if r.language == "en")


@needs_emoji
@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_text_splits_and_vocab_from_train_only(tokenizer):
    dm = EmojiNamesDataModule(tokenizer=tokenizer, vocab_size=100_000, seed=1)
    dm.setup("fit")
    train, val, test = dm._rows
    # Test emoji are unseen in training, in every language; the test split ignores `seed`.
    assert not {r.emoji for r in train + val} & {r.emoji for r in test}
    other = EmojiNamesDataModule(tokenizer=tokenizer, seed=2)
    other.setup("fit")
    assert {r.emoji for r in other._rows[2]} == {r.emoji for r in test}
    assert {r.text for r in other._rows[1]} != {r.text for r in val}

    # Every vocabulary token occurs in a training text; val/test-only tokens become <unk>.
    train_tokens = {t for r in train for t in tokenize(r.text, tokenizer)}
    assert dm.itos[:2] == ["<pad>", "<unk>"] and set(dm.itos[2:]) <= train_tokens
    assert set(dm.itos[2:]) == train_tokens  # vocab_size is large enough to keep them all
    if tokenizer == "word":
        unseen = {t for r in test for t in tokenize(r.text, tokenizer)} - train_tokens
        assert unseen
        assert UNK_ID in {i for ids in dm.test_set.ids for i in ids}

    assert len(dm.train_set.targets) == len(dm.train_set) == len(train)
    assert set(dm.train_set.targets) == set(range(8)) and dm.classes == sorted(LANGUAGES)
    assert all(isinstance(t, int) for t in dm.test_set.targets)


@needs_emoji
def test_text_vocab_cap_and_padding():
    dm = EmojiNamesDataModule(tokenizer="word", vocab_size=50, max_length=3)
    dm.setup("fit")
    assert dm.vocab_len == 50
    tokens, labels = pad_collate([dm.train_set[i] for i in range(16)])
    assert tokens.shape[0] == labels.shape[0] == 16 and tokens.shape[1] <= 3
    lengths = [len(dm.train_set.ids[i]) for i in range(16)]
    assert tokens.shape[1] == max(lengths)
    assert all((tokens[i, n:] == PAD_ID).all() for i, n in enumerate(lengths))


@needs_emoji
@pytest.mark.parametrize("encoder", ["cnn", "gru"])
def test_text_fit_test_predict_with_a_plain_trainer(encoder):
    L.seed_everything(0, verbose=False)
    dm = EmojiNamesDataModule(batch_size=64)
    model = LitTextClassifier(vocab_size=dm.hparams.vocab_size, encoder=encoder, hidden_dim=32)
    trainer = L.Trainer(**TRAINER_KW, limit_test_batches=3, limit_predict_batches=3)
    trainer.fit(model, datamodule=dm)
    _finite_metrics(trainer, "train_loss", "val_loss", "val_acc")
    config = trainer.lr_scheduler_configs[0]
    assert (config.interval, config.monitor) == ("epoch", "val_loss")

    trainer.test(model, datamodule=dm, verbose=False)
    assert 0.0 <= _finite_metrics(trainer, "test_acc")["test_acc"] <= 1.0

    probs = torch.cat(trainer.predict(model, datamodule=dm))
    assert probs.shape == (3 * 64, 8)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(len(probs)))


@needs_emoji
def test_text_model_rejects_a_vocabulary_larger_than_its_embedding():
    dm = EmojiNamesDataModule(tokenizer="word", vocab_size=500)
    trainer = L.Trainer(**TRAINER_KW)
    with pytest.raises(ValueError, match="vocab_size >= 500"):
        trainer.fit(LitTextClassifier(vocab_size=100), datamodule=dm)


@needs_emoji
def test_text_train_plain_fast(tmp_path):
    from examples.text_classifier import train_plain

    result = train_plain.main(["--fast", "--root-dir", str(tmp_path / "runs")])
    assert 0.0 <= result["test_acc"] <= 1.0
    assert 0.10 < result["majority_baseline_acc"] < 0.16
