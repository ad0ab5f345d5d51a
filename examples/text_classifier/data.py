"""A LightningDataModule for the emoji-name language task: splits, vocabulary, padded batches.

Splits: a fixed test split of 20% of the emoji (seed ``TEST_SPLIT_SEED``, whatever ``seed``
is), then ``val_fraction`` of the remaining rows for validation, stratified by language and
seeded with ``seed``. The vocabulary is built from the training rows only (not val, not test):
tokens seen only in val or test map to ``<unk>``, as they would for new text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

from examples.text_classifier.corpus import LANGUAGES, NameRow, load_emoji_names

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
TEST_FRACTION = 0.2
# Fixed on purpose: every run is tested on the same emoji, whatever its `seed`.
TEST_SPLIT_SEED = 0
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str = "char") -> list[str]:
    """Lowercase ``text`` and split it into characters or into words and punctuation marks.

    Args:
        text: Input text.
        level: "char" (every character, spaces included) or "word".
    """
    text = text.lower()
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD.findall(text)
    raise ValueError(f"tokenizer must be 'char' or 'word', got {level!r}")


def build_vocab(
    token_lists: Sequence[Sequence[str]], max_size: int, min_freq: int = 1
) -> list[str]:
    """Build an index-to-token list: ``<pad>``, ``<unk>``, then tokens by falling count.

    Args:
        token_lists: Tokenized training texts (only these: no val or test text).
        max_size: Size of the vocabulary, the two special tokens included.
        min_freq: Tokens seen fewer times are left out (they become ``<unk>``).
    """
    counts = Counter(token for tokens in token_lists for token in tokens)
    # Ties broken by the token itself so the vocabulary does not depend on row order.
    ranked = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
    return [PAD, UNK, *ranked[: max(0, max_size - 2)]]


class EncodedTextDataset(Dataset):
    """Token-id sequences with their labels.

    Attributes:
        texts: The raw texts.
        targets: Label of each text, as a list of ints (for stratified splits).
        classes: Label names, indexed by label.
    """

    def __init__(
        self, texts: list[str], ids: list[list[int]], targets: list[int], classes: list[str]
    ):
        self.texts = texts
        self.ids = ids
        self.targets = targets
        self.classes = classes

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.tensor(self.ids[index], dtype=torch.long), self.targets[index]


def pad_collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest sequence with ``PAD_ID``: ``(tokens [B, T], labels [B])``."""
    sequences, labels = zip(*batch)
    tokens = torch.nn.utils.rnn.pad_sequence(
        list(sequences), batch_first=True, padding_value=PAD_ID
    )
    return tokens, torch.tensor(labels, dtype=torch.long)


class EmojiNamesDataModule(L.LightningDataModule):
    """Which language is an emoji name in? 8 classes, ~14k short texts (see ``corpus``).

    Batches are ``(tokens, labels)``: ``tokens`` is ``[B, T]`` token ids padded with 0 (so a
    model finds the lengths from ``tokens != 0``). ``predict_dataloader`` yields the test split
    in the same form, labels included, so predictions can be scored.

    Args:
        batch_size: Batch size of every loader.
        max_length: Texts are cut to this many tokens.
        tokenizer: "char" or "word" tokens.
        vocab_size: Most tokens in the vocabulary, ``<pad>`` and ``<unk>`` included; size the
            model's embedding with the same number.
        min_freq: Training-set count a token needs to enter the vocabulary.
        val_fraction: Share of the non-test rows held out for validation, in (0, 1).
        seed: Seeds the val split and the train shuffling (not the test split).
        num_workers: DataLoader worker processes.
        languages: Language codes to classify (``corpus.LANGUAGES`` by default).
    """

    def __init__(
        self,
        batch_size: int = 64,
        max_length: int = 64,
        tokenizer: str = "char",
        vocab_size: int = 2000,
        min_freq: int = 1,
        val_fraction: float = 0.2,
        seed: int = 0,
        num_workers: int = 0,
        languages: tuple[str, ...] = LANGUAGES,
    ) -> None:
        super().__init__()
        tokenize("", tokenizer)  # fail here on a bad choice, not in setup()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.classes = sorted(languages)
        self.num_classes = len(self.classes)
        self.itos: list[str] | None = None
        self.stoi: dict[str, int] = {}
        self.train_set: EncodedTextDataset | None = None
        self.val_set: EncodedTextDataset | None = None
        self.test_set: EncodedTextDataset | None = None
        self._rows: tuple[list[NameRow], list[NameRow], list[NameRow]] | None = None

    @property
    def vocab_len(self) -> int:
        """Tokens in the built vocabulary (at most ``vocab_size``); 0 before ``setup``."""
        return len(self.itos or ())

    def prepare_data(self) -> None:
        """Fail early, on the main process, if the ``emoji`` package is missing."""
        import emoji  # noqa: F401

    def split(self) -> tuple[list[NameRow], list[NameRow], list[NameRow]]:
        """Return the (train, val, test) rows; the test emoji are the same for every ``seed``."""
        rows = load_emoji_names(tuple(self.hparams.languages))
        emojis = list(dict.fromkeys(row.emoji for row in rows))
        order = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(emojis))
        test_emojis = {emojis[i] for i in order[: round(TEST_FRACTION * len(emojis))]}
        rest = [row for row in rows if row.emoji not in test_emojis]
        test = [row for row in rows if row.emoji in test_emojis]
        train, val = train_test_split(
            rest,
            test_size=self.hparams.val_fraction,
            stratify=[row.language for row in rest],
            random_state=self.hparams.seed,
        )
        return train, val, test

    def setup(self, stage: str | None = None) -> None:
        """Split, build the vocabulary from the train rows (unless loaded), encode every split."""
        if self._rows is not None:
            return
        self._rows = self.split()
        if self.itos is None:
            self.itos = build_vocab(
                [tokenize(row.text, self.hparams.tokenizer) for row in self._rows[0]],
                max_size=self.hparams.vocab_size,
                min_freq=self.hparams.min_freq,
            )
        self._encode_splits()

    def _encode_splits(self) -> None:
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        self.train_set, self.val_set, self.test_set = (self._encode(rows) for rows in self._rows)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, cut to ``max_length``; never empty."""
        tokens = tokenize(text, self.hparams.tokenizer)[: self.hparams.max_length]
        return [self.stoi.get(token, UNK_ID) for token in tokens] or [UNK_ID]

    def _encode(self, rows: list[NameRow]) -> EncodedTextDataset:
        label = {name: i for i, name in enumerate(self.classes)}
        return EncodedTextDataset(
            texts=[row.text for row in rows],
            ids=[self.encode(row.text) for row in rows],
            targets=[label[row.language] for row in rows],
            classes=self.classes,
        )

    # The vocabulary goes into checkpoints, so a restored run encodes text the same way.
    def state_dict(self) -> dict[str, Any]:
        return {"itos": self.itos}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.itos = state_dict["itos"]
        if self._rows is not None:  # Lightning restores after setup(): re-encode right away
            self._encode_splits()

    def _loader(self, dataset: EncodedTextDataset, shuffle: bool = False) -> DataLoader:
        generator = torch.Generator().manual_seed(self.hparams.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=pad_collate,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)
