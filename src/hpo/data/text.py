"""`data=text`: a CSV or Parquet file of texts and targets, tokenized by the model's own
tokenizer, as a LightningDataModule on the Lightning path.

It hands hpo its rows through the ``hpo_dataset`` hook (hpo.data.datamodule), so the test
split and the k folds are hpo's own (stratified by class, or grouped by duplicate text),
and the quality checks (``text_quality``) go to ``data_quality.json``:

* **empty texts** (nothing left after stripping whitespace): dropped, listed.
* **duplicates**: the same text twice, byte for byte.
* **near-duplicates**: different texts with the same *normalised* text: Unicode NFKC,
  case-folded, every run of characters that are not letters or digits made one space
  ("Return the path." and "return the PATH" are near-duplicates; "Return a path." is not).
  Rows are compared by a hash of that normalised text.
* **conflicting labels**: one normalised text with two targets.
* **duplicates across the test split** (leakage): test rows whose normalised text is also a
  non-test row's; the test score would flatter the model.
* **class imbalance**: rows per class (classification).

``data.duplicates`` decides what happens to repeated (normalised) texts: ``drop`` (default:
keep the first of each, drop every row of a text with conflicting labels; no leakage is
left), ``group`` (keep them all, and keep each text's rows in one split and one fold:
grouped folds), or ``keep`` (keep them all, only report).

Batches are ``({"input_ids", "attention_mask"}, y)``, padded to the batch's longest text
(at most ``max_length`` tokens); ``y`` is the class index (in the sorted class names) or
the float target.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from hpo.data.quality import Check, QualityReport, class_imbalance
from hpo.errors import ConfigError, DataError

DUPLICATE_CHOICES = ("drop", "group", "keep")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
SNIPPET = 80  # characters of a text quoted in a check


def normalise(text: str) -> str:
    """The text near-duplicates share: NFKC, case-folded, non-alphanumeric runs as one space."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_key(text: str) -> str:
    """A hash of the normalised text (what duplicates and leakage are counted by)."""
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()[:16]


def load_tokenizer(directory: Any, key: str = "model.pretrained"):
    """The tokenizer saved in ``directory`` (``save_pretrained``), from local files only."""
    from transformers import AutoTokenizer

    path = Path(str(directory)) if directory not in (None, "", "???") else None
    if path is None or not path.is_dir():
        raise ConfigError(
            f"config key `{key}` (data.tokenizer, which is model.pretrained unless set): "
            f"{directory!r} is not a directory; point it at a folder written by "
            "save_pretrained() (examples/finetune_text/pretrain.py makes one). Nothing is "
            "downloaded."
        )
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise ConfigError(
            f"config key `{key}`: no tokenizer loads from {path} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); save one there with tokenizer.save_pretrained()."
        ) from exc


def read_table(path: Any, key: str = "data.path") -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, or a DataError naming ``key``."""
    file = Path(str(path)) if path not in (None, "", "???") else None
    if file is None or not file.is_file():
        raise DataError(f"config key `{key}`: no file {path!r}; give a .csv or .parquet file.")
    if file.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(file)
    if file.suffix.lower() in (".csv", ".tsv", ".txt"):
        return pd.read_csv(file, sep="\t" if file.suffix.lower() == ".tsv" else ",")
    raise DataError(f"config key `{key}`: {file.name} is neither .csv nor .parquet.")


def text_column(frame: pd.DataFrame, column: str, key: str, source: Any) -> pd.Series:
    if column not in frame.columns:
        raise DataError(
            f"config key `{key}`: {source} has no column {column!r}; its columns are "
            f"{', '.join(map(str, frame.columns))}. Set {key}=COLUMN."
        )
    return frame[column]


class TokenizedTexts(Dataset):
    """Token ids of each text with its target. ``texts`` (the raw texts) and ``targets``
    (class indices or floats) are attributes, for the folds and the report."""

    def __init__(self, texts: list[str], ids: list[list[int]], targets: list) -> None:
        self.texts, self.ids, self.targets = texts, ids, targets

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        return self.ids[index], self.targets[index]


class PadCollate:
    """Pads a batch of id lists to its longest: ``({"input_ids", "attention_mask"}, y)``."""

    def __init__(self, pad_id: int, regression: bool) -> None:
        self.pad_id, self.regression = pad_id, regression

    def __call__(self, batch):
        ids, targets = zip(*batch)
        width = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        y = torch.as_tensor(targets, dtype=torch.float32 if self.regression else torch.long)
        return {"input_ids": input_ids, "attention_mask": mask}, y


class TextDataModule(L.LightningDataModule):
    """Texts and targets from a CSV/Parquet file, tokenized by the model's tokenizer.

    Args:
        path: the .csv or .parquet file.
        text: the column holding the texts.
        target: the column holding the labels (classes, or numbers for regression).
        tokenizer: a directory written by ``save_pretrained`` (``model.pretrained`` by
            default, so the text is cut into the tokens the backbone was trained on).
        max_length: texts are cut to this many tokens (special tokens included).
        batch_size: rows per batch (a fine-tuning hyperparameter: sweep it here).
        duplicates: ``drop`` | ``group`` | ``keep`` (module docstring).
        num_workers: DataLoader workers.
        predict_path: a file with the text column to predict (``hpo predict`` sets it).
    """

    def __init__(
        self,
        path: str | None = None,
        text: str = "text",
        target: str = "target",
        tokenizer: str | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        duplicates: str = "drop",
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        self.path, self.text, self.target = path, text, target
        self.tokenizer_dir, self.max_length = tokenizer, int(max_length)
        self.batch_size, self.duplicates = int(batch_size), duplicates
        self.num_workers, self.predict_path = int(num_workers), predict_path
        self.dataset: TokenizedTexts | None = None
        self.classes: list | None = None
        self.report: QualityReport | None = None
        self._keys: np.ndarray | None = None
        self._predict: TokenizedTexts | None = None

    # -- reading and checking -------------------------------------------------------
    def _check_keys(self) -> None:
        if self.duplicates not in DUPLICATE_CHOICES:
            raise ConfigError(
                f"config key `data.duplicates`: must be one of {', '.join(DUPLICATE_CHOICES)}, "
                f"got {self.duplicates!r}."
            )
        if self.max_length < 2:
            raise ConfigError(f"config key `data.max_length`: at least 2, got {self.max_length}.")

    def _encode(self, texts: list[str]) -> list[list[int]]:
        encoded = self._tokenizer(texts, truncation=True, max_length=self.max_length)
        return [list(ids) for ids in encoded["input_ids"]]

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            self._setup_predict()
            return
        if self.dataset is not None:
            return
        self._check_keys()
        frame = read_table(self.path)
        texts = text_column(frame, self.text, "data.text", self.path)
        targets = text_column(frame, self.target, "data.target", self.path)
        self._tokenizer = load_tokenizer(self.tokenizer_dir)
        self._build(texts, targets)

    def _build(self, texts: pd.Series, targets: pd.Series) -> None:
        raw = texts.fillna("").astype(str).tolist()
        rows = np.arange(len(raw))
        checks = []
        empty = np.asarray([not t.strip() for t in raw], dtype=bool)
        missing_target = targets.isna().to_numpy()
        checks.append(
            Check("empty_texts", "empty texts", int(empty.sum()), "rows",
                  "fixed" if empty.any() else "ok", "dropped",
                  "Rows whose text is empty or only whitespace; nothing to learn from.",
                  rows=rows[empty][:20].tolist())
        )  # fmt: skip
        if missing_target.any():
            checks.append(
                Check("missing_target", "missing target", int(missing_target.sum()), "rows",
                      "fixed", "dropped", f"Rows with no `{self.target}`.",
                      rows=rows[missing_target][:20].tolist())
            )  # fmt: skip
        keep = ~empty & ~missing_target
        if not keep.any():
            raise DataError(f"config key `data.text`: every row of {self.path} is empty.")
        task = self._task(targets[keep])
        keys = np.asarray([text_key(t) for t in raw])
        labels = targets.astype(str if task == "classification" else float).to_numpy()
        dup_checks, keep = duplicate_checks(raw, keys, labels, keep, self.duplicates)
        checks.extend(dup_checks)
        kept = rows[keep]
        texts_kept = [raw[i] for i in kept]
        if task == "classification":
            names = labels[kept]
            self.classes = sorted(set(names.tolist()))
            lookup = {c: i for i, c in enumerate(self.classes)}
            y = [lookup[v] for v in names.tolist()]
            checks.append(class_imbalance(np.asarray(y), self.classes))
            self.labels = names
        else:
            y = labels[kept].astype(float).tolist()
            self.labels = np.asarray(y)
        self._task_name = task
        self._keys = keys[kept]
        self._pad_id = self._tokenizer.pad_token_id or 0
        self.dataset = TokenizedTexts(texts_kept, self._encode(texts_kept), y)
        lengths = np.asarray([len(ids) for ids in self.dataset.ids])
        self.report = QualityReport(
            source={"kind": "text", "path": str(self.path), "text": self.text,
                    "target": self.target, "rows": len(raw)},
            result={"rows": len(kept), "task": task, "classes": self.classes,
                    "tokens_median": float(np.median(lengths)),
                    "cut_at_max_length": int((lengths >= self.max_length).sum()),
                    "duplicates": self.duplicates, "near_duplicate_rule": NEAR_RULE},
            checks=checks,
        )  # fmt: skip

    @staticmethod
    def _task(targets: pd.Series) -> str:
        """Regression for a float target with more than 20 distinct values, else classes."""
        if pd.api.types.is_float_dtype(targets) and targets.nunique() > 20:
            return "regression"
        return "classification"

    def quality(self, test_rows: np.ndarray | None) -> QualityReport:
        """The report with the test split known: duplicates across it (leakage)."""
        report = self.report
        if test_rows is not None and len(test_rows):
            is_test = np.zeros(len(self._keys), dtype=bool)
            is_test[test_rows] = True
            seen = set(self._keys[~is_test].tolist())
            leaked = np.flatnonzero(is_test & np.isin(self._keys, list(seen)))
            report.checks = [c for c in report.checks if c.name != "test_leakage"]
            report.checks.append(
                Check("test_leakage", "duplicates across the test split", len(leaked), "rows",
                      "warning" if len(leaked) else "ok", "reported",
                      "Test rows whose (normalised) text is also a training row's: the test "
                      "score flatters the model. data.duplicates=drop or group removes them.",
                      rows=leaked[:20].tolist())
            )  # fmt: skip
        return report

    # -- the hook and the loaders ---------------------------------------------------
    def hpo_dataset(self) -> dict[str, Any]:
        out = {"dataset": self.dataset, "labels": self.labels, "quality": self.quality}
        if self.duplicates == "group":
            out["groups"] = self._keys
        return out

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        regression = getattr(self, "_task_name", "classification") == "regression"
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            collate_fn=PadCollate(self._pad_id, regression),
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset, shuffle=True)

    def _setup_predict(self) -> None:
        self._check_keys()
        source = self.predict_path or self.path
        frame = read_table(source, "INPUT")
        texts = text_column(frame, self.text, "data.text", source).fillna("").astype(str)
        self._tokenizer = load_tokenizer(self.tokenizer_dir)
        self._pad_id = self._tokenizer.pad_token_id or 0
        self._task_name = "classification"
        texts = texts.tolist()
        self._predict = TokenizedTexts(texts, self._encode(texts), [0] * len(texts))

    def predict_dataloader(self) -> DataLoader:
        """The rows of ``predict_path`` (``hpo predict MODEL_DIR FILE``), in file order."""
        return self._loader(self._predict, shuffle=False)


NEAR_RULE = (
    "same text after Unicode NFKC, case folding and turning every run of non-letter, "
    "non-digit characters into one space"
)


def duplicate_checks(
    raw: list[str], keys: np.ndarray, labels: np.ndarray, keep: np.ndarray, how: str
) -> tuple[list[Check], np.ndarray]:
    """The duplicate, near-duplicate and conflicting-label checks, and the rows kept."""
    rows = np.flatnonzero(keep)
    frame = pd.DataFrame({"raw": [raw[i] for i in rows], "key": keys[rows],
                          "label": labels[rows]}, index=rows)  # fmt: skip
    exact = frame.duplicated("raw", keep="first")
    near = frame.duplicated("key", keep="first") & ~exact
    labels_per_key = frame.groupby("key")["label"].nunique()
    conflicting = frame["key"].map(labels_per_key).to_numpy() > 1
    action = {"drop": "dropped (first kept)", "group": "grouped (one split, one fold)",
              "keep": "kept"}[how]  # fmt: skip
    status = "fixed" if how != "keep" else "warning"

    def snippet(mask) -> dict[str, Any]:
        picked = frame[mask].head(3)
        return {str(i): t[:SNIPPET] for i, t in zip(picked.index, picked["raw"])}

    checks = [
        Check("duplicate_texts", "duplicate texts", int(exact.sum()), "rows",
              status if exact.any() else "ok", action,
              "Rows whose text repeats an earlier row's exactly.", snippet(exact.to_numpy()),
              frame.index[exact.to_numpy()][:20].tolist()),
        Check("near_duplicate_texts", "near-duplicate texts", int(near.sum()), "rows",
              status if near.any() else "ok", action,
              f"Rows whose text is an earlier row's up to case, punctuation and spacing "
              f"({NEAR_RULE}).", snippet(near.to_numpy()),
              frame.index[near.to_numpy()][:20].tolist()),
        Check("conflicting_labels", "one text, two labels", int(conflicting.sum()), "rows",
              ("fixed" if how == "drop" else "warning") if conflicting.any() else "ok",
              "dropped (all)" if how == "drop" else "kept",
              "Rows of one normalised text that carry different targets.", snippet(conflicting),
              frame.index[conflicting][:20].tolist()),
    ]  # fmt: skip
    out = keep.copy()
    if how == "drop":
        out[frame.index[(exact | near).to_numpy() | conflicting]] = False
    return checks, out
