"""Apply exported preprocessing (plain JSON parameters) to cleaned rows with numpy.

This module is what a deployed model runs: it imports numpy and pandas only (no
scikit-learn, no torch) and reads nothing but JSON, so loading unpickles nothing. The
parameters come from a fitted scikit-learn ColumnTransformer (hpo.export.preprocessing)
and every step repeats that transformer's arithmetic in the same order, in float64, so
the features match what the model was trained on. Its input is what
``hpo.data.clean.clean_features`` returns: numeric columns as float64 (text that is not a
number already missing), categorical columns as canonical text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpo.data.clean import category_text

PREPROCESSING_FORMAT = "hpo.preprocessing/2"


def category_key(value: Any) -> str:
    """Categories are compared as their canonical text, so a CSV's "1" meets a training
    value 1, and a float 1.0 (an integer label read from a column with gaps) meets it too."""
    return category_text(value, fold_case=False)


def _numeric_block(frame: pd.DataFrame, block: dict[str, Any]) -> np.ndarray:
    values = frame[block["columns"]].to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values)
    fill = np.asarray(block["impute"], dtype=np.float64)
    kept = np.asarray(block["kept"], dtype=np.int64)
    out = np.where(missing, fill, values)[:, kept]
    if block["indicator"]:
        out = np.hstack([out, missing[:, block["indicator"]].astype(np.float64)])
    return _scale(out, block.get("scale"))


def _scale(out: np.ndarray, scale: dict[str, Any] | None) -> np.ndarray:
    if scale is None:
        return out
    if scale["kind"] == "minmax":  # sklearn: X *= scale_; X += min_
        return out * np.asarray(scale["scale"]) + np.asarray(scale["min"])
    # standard (mean_, scale_) and robust (center_, scale_): X -= center; X /= scale
    return (out - np.asarray(scale["center"])) / np.asarray(scale["scale"])


def _categorical_block(frame: pd.DataFrame, block: dict[str, Any]) -> np.ndarray:
    parts = []
    for name, fill, encoding in zip(block["columns"], block["impute"], block["encodings"]):
        raw = frame[name]
        keys = np.where(raw.isna().to_numpy(), fill, raw.map(category_key).to_numpy())
        codes = pd.Series(keys).map(encoding["codes"])
        if encoding["kind"] == "onehot":
            onehot = np.zeros((len(frame), encoding["width"]), dtype=np.float64)
            known = codes.notna().to_numpy()  # unknown categories stay all-zero ("ignore")
            onehot[np.flatnonzero(known), codes[known].to_numpy(dtype=np.int64)] = 1.0
            parts.append(onehot)
        else:
            unknown = float(encoding["unknown_value"])
            parts.append(codes.fillna(unknown).to_numpy(dtype=np.float64)[:, None])
    return np.hstack(parts) if parts else np.empty((len(frame), 0))


def transform_rows(frame: pd.DataFrame, spec: dict[str, Any]) -> np.ndarray:
    """The model's input features (float32) for cleaned rows, given one preprocessing spec.

    A spec with ``positions`` belongs to a fold-model whose input layout (the union of all
    folds' output columns) is wider than what its own preprocessing produces: each output
    column goes to its position, the others stay 0, as during training.
    """
    blocks = []
    for block in spec["blocks"]:
        if block["kind"] == "numeric":
            blocks.append(_numeric_block(frame, block))
        else:
            blocks.append(_categorical_block(frame, block))
    out = np.hstack(blocks) if blocks else np.empty((len(frame), 0))
    if spec.get("positions") is not None:
        placed = np.zeros((len(frame), int(spec["width"])), dtype=np.float64)
        placed[:, np.asarray(spec["positions"], dtype=np.int64)] = out
        out = placed
    return np.ascontiguousarray(out, dtype=np.float32)


def required_columns(document: dict[str, Any]) -> list[str]:
    """Every raw column a preprocessing document reads, in the training file's order."""
    return [column["name"] for column in document["columns"]]
