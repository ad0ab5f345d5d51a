"""Cleaning before the preprocessor, as one function of a JSON-serializable spec.

``plan_cleaning`` looks at the loaded table once and decides per column what it is (a
number or a category) and which columns go (all empty, constant, ID-like). The spec it
returns holds names and rules only, no statistic of any row, so deciding it on all rows
leaks nothing. ``clean_features(frame, spec)`` applies it: to the training table here, and
to raw rows at predict time (the spec is exported with the model), so training and
prediction see the same columns, spelled the same way.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from hpo.errors import DataError

SPEC_VERSION = 1
MAX_LISTED_VALUES = 10  # stray strings / spellings listed per column


def category_text(value: Any, fold_case: bool) -> str:
    """The canonical text of one category: surrounding spaces stripped, case folded."""
    if isinstance(value, (bool, np.bool_)):
        text = "true" if value else "false"
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        text = str(int(value))  # 7.0 read from a CSV with gaps is the category "7"
    else:
        text = str(value)
    text = text.strip()
    return text.casefold() if fold_case else text


def _is_number_column(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _missing_texts(uniques: pd.Series, na_values: set[str]) -> np.ndarray:
    return uniques.astype(str).str.strip().isin(na_values).to_numpy()


def to_numbers(series: pd.Series, na_values: set[str]) -> pd.Series:
    """float64 values; NA spellings, stray strings and infinities become NaN."""
    if _is_number_column(series) or pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    else:
        # Parse each distinct value once: columns repeat their values a lot.
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        texts = pd.Series(uniques, dtype=object).astype(str).str.strip()
        parsed = pd.to_numeric(texts, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        parsed[texts.isin(na_values).to_numpy()] = np.nan
        values = np.append(parsed, np.nan)[codes]  # code -1 (missing) picks the NaN
    values[np.isinf(values)] = np.nan
    return pd.Series(values, index=series.index, name=series.name)


def to_categories(series: pd.Series, na_values: set[str], fold_case: bool) -> pd.Series:
    """object values in canonical spelling; NA spellings become NaN."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = np.empty(len(uniques) + 1, dtype=object)
    for i, value in enumerate(uniques):
        raw = str(value).strip()
        texts[i] = np.nan if raw in na_values else category_text(value, fold_case)
    texts[-1] = np.nan
    return pd.Series(texts[codes], index=series.index, name=series.name, dtype=object)


def clean_features(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Apply a cleaning spec: keep its columns in its order, numbers as float64 (strays
    coerced to NaN), categories as canonical text. Extra columns are ignored.

    Raises:
        DataError: the frame lacks a column the spec needs.
    """
    absent = [c for c in spec["columns"] if c not in frame.columns]
    if absent:
        raise DataError(
            f"the input has no column {', '.join(f'`{c}`' for c in absent)}, which the model "
            "was trained on; add it (empty values are fine)."
        )
    na_values = set(spec["na_values"])
    numeric = set(spec["numeric"])
    fold_case = bool(spec["normalize_categories"])
    columns = {
        c: to_numbers(frame[c], na_values)
        if c in numeric
        else to_categories(frame[c], na_values, fold_case)
        for c in spec["columns"]
    }
    return pd.DataFrame(columns, index=frame.index)


def _value_counts(series: pd.Series, na_values: set[str]) -> pd.Series:
    counts = series.value_counts(dropna=True)
    if len(counts):
        counts = counts[~_missing_texts(counts.index.to_series(), na_values)]
    return counts


def _number_profile(counts: pd.Series) -> tuple[int, int, dict[str, int]]:
    """(values that parse, values that don't, the strays with their counts)."""
    parsed = pd.to_numeric(counts.index.to_series().astype(str).str.strip(), errors="coerce")
    stray = parsed.isna().to_numpy()
    strays = counts[stray].head(MAX_LISTED_VALUES)
    return (
        int(counts[~stray].sum()),
        int(counts[stray].sum()),
        {str(k): int(v) for k, v in strays.items()},
    )


def _spellings(counts: pd.Series) -> dict[str, dict[str, int]]:
    """Categories written more than one way (case, surrounding spaces): key -> spellings."""
    keys = counts.index.to_series().astype(str).str.strip().str.casefold().to_numpy()
    shared = pd.Series(keys).duplicated(keep=False).to_numpy()  # only these can clash
    groups: dict[str, dict[str, int]] = {}
    for key, spelled in counts[shared].groupby(keys[shared], sort=True):
        if len(spelled) > 1:
            groups[str(key)] = {str(k): int(v) for k, v in spelled.items()}
    return groups


def _respelled(groups: dict[str, dict[str, int]]) -> int:
    """Cells not written in their group's most frequent spelling."""
    return sum(sum(g.values()) - max(g.values()) for g in groups.values())


def plan_cleaning(features: pd.DataFrame, data_cfg) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decide each column's kind; find stray strings and inconsistent spellings.

    Returns:
        ``(spec, findings)``: the spec for ``clean_features`` (all columns kept; drops are
        decided on the cleaned frame by ``plan_drops``) and what was found, by column.
    """
    na_values = set(data_cfg.na_values or [])
    fold_case = bool(getattr(data_cfg, "normalize_categories", True))
    max_stray = float(getattr(data_cfg, "max_stray_fraction", 0.05))
    numeric, categorical = [], []
    strays: dict[str, Any] = {}
    spellings: dict[str, Any] = {}
    for column in features.columns:
        series = features[column]
        if _is_number_column(series):
            numeric.append(column)
            continue
        if pd.api.types.is_bool_dtype(series):
            categorical.append(column)
            continue
        counts = _value_counts(series, na_values)
        parsed, stray, stray_values = _number_profile(counts)
        if parsed and stray <= max_stray * (parsed + stray):
            numeric.append(column)  # numbers with a few strays (or numbers stored as text)
            if stray:
                strays[column] = {
                    "count": stray,
                    "share": round(stray / (parsed + stray), 4),
                    "values": stray_values,
                }
            continue
        categorical.append(column)
        groups = _spellings(counts) if fold_case else {}
        if groups:
            spellings[column] = {
                "groups": len(groups),
                "count": _respelled(groups),
                "examples": dict(list(groups.items())[:MAX_LISTED_VALUES]),
            }
    spec = {
        "version": SPEC_VERSION,
        "columns": list(features.columns),
        "numeric": numeric,
        "categorical": categorical,
        "na_values": sorted(na_values),
        "normalize_categories": fold_case,
    }
    return spec, {"stray_strings": strays, "inconsistent_categories": spellings}


_ID_NAMES = {"index", "idx", "row", "rownum", "row_number", "uuid", "guid", "key"}


def looks_like_id_name(name: str) -> bool:
    """``id``, ``customer_id``, ``CustomerID``, ``Unnamed: 0`` (pandas' saved index), ``""``."""
    low = name.strip().lower()
    return (
        low == ""
        or low.startswith("unnamed")
        or low in _ID_NAMES
        or re.search(r"(^|[_\W])(id|uuid)$", low) is not None
        or re.search(r"[a-z0-9](Id|ID)$", name.strip()) is not None
    )


def _id_reason(series: pd.Series) -> str | None:
    """Why a column is ID-like (unique per row and an identifier), or None."""
    n = len(series)
    if n < 2 or series.isna().any():
        return None
    if not _is_number_column(series):
        return "a distinct text value in every row" if series.nunique() == n else None
    values = series.to_numpy(dtype=np.float64)
    if not np.array_equal(values, np.floor(values)) or series.nunique() != n:
        return None  # distinct real numbers are measurements, not identifiers
    if looks_like_id_name(str(series.name)):
        return "distinct whole numbers in every row and an identifier's name"
    if series.is_monotonic_increasing or series.is_monotonic_decreasing:
        return "distinct whole numbers that follow the row order"
    if values.max() - values.min() + 1 == n:
        return "a permutation of consecutive whole numbers (a row number)"
    return None


def plan_drops(
    cleaned: pd.DataFrame, data_cfg, protected: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    """Columns that carry nothing: all empty, constant, ID-like (unless kept by config)."""
    empty: dict[str, Any] = {}
    constant: dict[str, Any] = {}
    ids: dict[str, Any] = {}
    for column in cleaned.columns:
        if column in protected:
            continue
        series = cleaned[column]
        if series.isna().all():
            empty[column] = "no value in any row"
            continue
        value = series.iloc[0]
        if not series.isna().any() and series.eq(value).all():  # cheaper than nunique
            constant[column] = value.item() if hasattr(value, "item") else value
            continue
        reason = _id_reason(series)
        if reason:
            ids[column] = reason
    return {"empty_columns": empty, "constant_columns": constant, "id_columns": ids}


def narrow_spec(spec: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    """The spec without the dropped columns."""
    keep = [c for c in spec["columns"] if c not in dropped]
    return {
        **spec,
        "columns": keep,
        "numeric": [c for c in spec["numeric"] if c in keep],
        "categorical": [c for c in spec["categorical"] if c in keep],
    }


def clean_target(
    target: pd.Series, data_cfg, declared_task: str
) -> tuple[pd.Series, dict[str, Any]]:
    """The target with NA spellings missing, a few stray strings coerced (unless the task
    is classification) and class labels spelled one way (each label's most frequent
    spelling, so predictions use the user's own labels)."""
    na_values = set(data_cfg.na_values or [])
    findings: dict[str, Any] = {}
    if _is_number_column(target):
        return to_numbers(target, na_values), findings
    if pd.api.types.is_bool_dtype(target):
        return target, findings
    counts = _value_counts(target, na_values)
    if declared_task != "classification":
        parsed, stray, stray_values = _number_profile(counts)
        max_stray = float(getattr(data_cfg, "max_stray_fraction", 0.05))
        if parsed and stray <= max_stray * (parsed + stray):
            if stray:
                findings["stray_strings"] = {"count": stray, "values": stray_values}
            return to_numbers(target, na_values), findings
    groups = _spellings(counts)
    labels = to_categories(target, na_values, fold_case=False)  # stripped, case kept
    if groups:
        canonical = {}
        for key, spelled in groups.items():
            best = max(spelled.items(), key=lambda kv: (kv[1], kv[0]))[0].strip()
            canonical[key] = best
        folded = labels.str.casefold()
        labels = labels.where(~folded.isin(list(canonical)), folded.map(canonical))
        findings["inconsistent_categories"] = {
            "groups": len(groups),
            "count": _respelled(groups),
            "examples": dict(list(groups.items())[:MAX_LISTED_VALUES]),
            "labels": canonical,
        }
    return labels, findings
