"""Apply exported preprocessing (plain JSON parameters) to raw rows with numpy.

This module is what a deployed model runs: it imports numpy and pandas only (no
scikit-learn, no torch) and reads nothing but JSON, so loading unpickles nothing. The
parameters come from a fitted scikit-learn ColumnTransformer (hpo.export.preprocessing)
and every step repeats that transformer's arithmetic in the same order, in float64, so
the features match what the model was trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpo.errors import DataError

PREPROCESSING_FORMAT = "hpo.preprocessing/1"


def category_key(value: Any) -> str:
    """Categories are compared as strings, so a CSV's "1" meets a training value "1"."""
    return str(value)


def _numeric_block(frame: pd.DataFrame, block: dict[str, Any]) -> np.ndarray:
    columns = block["columns"]
    part = frame[columns]
    if all(_is_number(dtype) for dtype in part.dtypes):  # the common case, in one copy
        values = part.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = _coerce_numeric(part)
    missing = np.isnan(values)
    fill = np.asarray(block["impute"], dtype=np.float64)
    kept = np.asarray(block["kept"], dtype=np.int64)
    out = np.where(missing, fill, values)[:, kept]
    if block["indicator"]:
        out = np.hstack([out, missing[:, block["indicator"]].astype(np.float64)])
    return _scale(out, block.get("scale"))


def _is_number(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _coerce_numeric(part: pd.DataFrame) -> np.ndarray:
    """Numbers from text columns (a CSV column with a stray value); DataError naming it."""
    values = np.empty(part.shape, dtype=np.float64)
    for j, name in enumerate(part.columns):
        converted = pd.to_numeric(part[name], errors="coerce")
        bad = converted.isna() & part[name].notna()
        if bad.any():
            example = part[name][bad].iloc[0]
            raise DataError(
                f"column `{name}` must be numeric, as in training, but holds {example!r}; "
                "fix the value or leave it empty (missing values are imputed)."
            )
        values[:, j] = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


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
    """The model's input features (float32) for raw rows, given one preprocessing spec."""
    blocks = []
    for block in spec["blocks"]:
        if block["kind"] == "numeric":
            blocks.append(_numeric_block(frame, block))
        else:
            blocks.append(_categorical_block(frame, block))
    out = np.hstack(blocks) if blocks else np.empty((len(frame), 0))
    return np.ascontiguousarray(out, dtype=np.float32)


def required_columns(spec: dict[str, Any]) -> list[str]:
    """Every raw column a spec reads, in the training file's order."""
    return [column["name"] for column in spec["columns"]]


def check_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    """Raise DataError naming the required columns that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        shown = ", ".join(f"`{c}`" for c in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DataError(
            f"the input lacks required column(s) {shown}{more}; pass rows in the training "
            "file's format (extra columns are ignored, the target column is optional)."
        )
