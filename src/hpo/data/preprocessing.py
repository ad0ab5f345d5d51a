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

from hpo.errors import ConfigError

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


def build_preprocessor(features: pd.DataFrame, data_cfg) -> ColumnTransformer:
    """An unfitted ColumnTransformer for these columns and the config's options."""
    numeric, categorical = split_columns(features)
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
    transformers = []
    if numeric:
        has_missing = bool(features[numeric].isna().any().any())
        steps = [("impute", SimpleImputer(strategy="median", add_indicator=has_missing))]
        if scaling != "none":
            steps.append(("scale", SCALERS[scaling]()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        impute = SimpleImputer(strategy="most_frequent", missing_values=np.nan)
        if encoding == "onehot":
            encoder = OneHotEncoder(
                handle_unknown="ignore",
                max_categories=getattr(data_cfg, "max_categories", 50),
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
