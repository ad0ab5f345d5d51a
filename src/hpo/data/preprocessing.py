"""Preprocessing built from the column types as scikit-learn transformers.

It is fit on one fold's train part at a time (and once more on all non-test rows for
the refit), never on validation or test rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from hpo.data.target_transform import check_setting
from hpo.errors import ConfigError

MISSING_CATEGORY = "(missing)"
CHUNK_ROWS = 65_536  # rows transformed at a time: sklearn's float64 temporaries stay small

SCALERS = {
    "standard": StandardScaler,
    "robust": RobustScaler,
    "minmax": MinMaxScaler,
}


def split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical column names, by dtype."""
    numeric = [
        c
        for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    ]
    categorical = [c for c in features.columns if c not in numeric]
    return numeric, categorical


def check_options(data_cfg) -> None:
    """The data options' values (types are the schema's job), before anything is loaded."""
    scaling = getattr(data_cfg, "scaling", "standard")
    encoding = getattr(data_cfg, "encoding", "onehot")
    if scaling not in (*SCALERS, "none"):
        raise ConfigError(
            f"config key `data.scaling`: must be one of {', '.join([*SCALERS, 'none'])}, "
            f"got {scaling!r}."
        )
    if encoding not in ("onehot", "ordinal"):
        raise ConfigError(
            f"config key `data.encoding`: must be onehot or ordinal, got {encoding!r}."
        )
    for key in ("max_stray_fraction", "leakage_threshold"):
        value = getattr(data_cfg, key, 0.0)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"config key `data.{key}`: must lie in [0, 1], got {value}.")
    check_setting(getattr(data_cfg, "target_transform", "auto"))
    if getattr(data_cfg, "max_categories", 2) < 2:
        raise ConfigError("config key `data.max_categories`: must be at least 2.")


def build_preprocessor(features: pd.DataFrame, data_cfg) -> ColumnTransformer:
    """An unfitted ColumnTransformer for these columns and the config's options."""
    numeric, categorical = split_columns(features)
    check_options(data_cfg)
    scaling = getattr(data_cfg, "scaling", "standard")
    encoding = getattr(data_cfg, "encoding", "onehot")
    transformers = []
    if numeric:
        has_missing = bool(features[numeric].isna().any().any())
        steps = [("impute", SimpleImputer(strategy="median", add_indicator=has_missing))]
        if scaling != "none":
            steps.append(("scale", SCALERS[scaling]()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        # A missing category is a level of its own: what missingness says is kept (the
        # most frequent value would erase it), as numbers keep it in their indicator.
        impute = SimpleImputer(
            strategy="constant", fill_value=MISSING_CATEGORY, missing_values=np.nan
        )
        max_categories = getattr(data_cfg, "max_categories", 50)
        if max_categories and features[categorical].nunique().max() <= max_categories:
            # No column has more: the cap changes nothing, and without it the encoder
            # skips counting every value in Python (minutes on a million rows).
            max_categories = None
        if encoding == "onehot":
            encoder = OneHotEncoder(
                handle_unknown="ignore",
                max_categories=max_categories,
                sparse_output=False,
                dtype=np.float32,
            )
        else:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32
            )
        transformers.append(
            ("categorical", Pipeline([("impute", impute), ("encode", encoder)]), categorical)
        )
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def to_float32(array) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


def fit_preprocessor(features: pd.DataFrame, data_cfg) -> ColumnTransformer:
    """``build_preprocessor`` fit on exactly these rows (a fold's train part, or all
    non-test rows for the refit)."""
    return build_preprocessor(features, data_cfg).fit(features)


def output_names(preprocessor: ColumnTransformer) -> list[str]:
    return [str(n) for n in preprocessor.get_feature_names_out()]


def merge_layouts(layouts: list[list[str]]) -> list[str]:
    """Every output column of any fold, first-seen order. Folds can differ (a category or
    a missing value only some train parts hold); the trials' models need one width."""
    merged: dict[str, None] = {}
    for names in layouts:
        merged.update(dict.fromkeys(names))
    return list(merged)


def transform_rows(
    preprocessor: ColumnTransformer,
    features: pd.DataFrame,
    rows: np.ndarray,
    layout: list[str] | None = None,
) -> np.ndarray:
    """float32 features of ``rows``, transformed in chunks into one preallocated array.

    With ``layout``, columns go to their place in it and the columns this preprocessor
    does not produce stay 0, which is what one-hot's ``handle_unknown="ignore"`` gives a
    category the fold never saw.
    """
    names = output_names(preprocessor)
    positions = None
    if layout is not None and layout != names:
        index = {name: i for i, name in enumerate(layout)}
        positions = np.array([index[name] for name in names])
    out = np.zeros((len(rows), len(layout) if layout is not None else len(names)), np.float32)
    for start in range(0, len(rows), CHUNK_ROWS):
        block = preprocessor.transform(features.iloc[rows[start : start + CHUNK_ROWS]])
        if positions is None:
            out[start : start + len(block)] = block
        else:
            out[start : start + len(block), positions] = block
    return out
