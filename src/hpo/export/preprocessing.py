"""A fitted preprocessing ColumnTransformer, written as plain JSON parameters.

Exactly the steps hpo.data.preprocessing.build_preprocessor uses are exported:
SimpleImputer (median with optional missing-value indicators; for categories a constant
`(missing)` level, or the most frequent value),
StandardScaler / RobustScaler / MinMaxScaler, OneHotEncoder (unknown -> all zeros,
infrequent categories from ``max_categories`` -> one shared column) and OrdinalEncoder
(unknown -> ``unknown_value``). Anything else fails the export by name rather than being
approximated. hpo.export.transform applies the result.
"""

from __future__ import annotations

from typing import Any

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

from hpo.data.preprocessing import output_names, split_columns
from hpo.errors import ConfigError
from hpo.export.transform import category_key


def _unsupported(step: Any) -> ConfigError:
    return ConfigError(
        f"cannot export the preprocessing step {type(step).__name__} without pickling; "
        "hpo exports SimpleImputer, Standard/Robust/MinMaxScaler, OneHotEncoder and "
        "OrdinalEncoder (see data.scaling and data.encoding)."
    )


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def _scaler_spec(scaler: Any) -> dict[str, Any]:
    if isinstance(scaler, StandardScaler):
        n = len(scaler.scale_ if scaler.scale_ is not None else scaler.mean_)
        center = scaler.mean_ if scaler.mean_ is not None else np.zeros(n)
        scale = scaler.scale_ if scaler.scale_ is not None else np.ones(n)
        return {"kind": "standard", "center": _floats(center), "scale": _floats(scale)}
    if isinstance(scaler, RobustScaler):
        n = len(scaler.center_ if scaler.center_ is not None else scaler.scale_)
        center = scaler.center_ if scaler.center_ is not None else np.zeros(n)
        scale = scaler.scale_ if scaler.scale_ is not None else np.ones(n)
        return {"kind": "robust", "center": _floats(center), "scale": _floats(scale)}
    if isinstance(scaler, MinMaxScaler):
        if scaler.clip:
            raise _unsupported(scaler)
        return {"kind": "minmax", "scale": _floats(scaler.scale_), "min": _floats(scaler.min_)}
    raise _unsupported(scaler)


def _numeric_spec(columns: list[str], pipeline: Pipeline) -> dict[str, Any]:
    steps = list(pipeline.named_steps.values())
    imputer, rest = steps[0], steps[1:]
    if not isinstance(imputer, SimpleImputer) or imputer.strategy not in ("median", "mean"):
        raise _unsupported(imputer)
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    # SimpleImputer drops columns it never saw a value in (keep_empty_features=False).
    kept = [int(i) for i in np.flatnonzero(~np.isnan(statistics))]
    if imputer.keep_empty_features:
        kept = list(range(len(columns)))
    indicator = []
    if imputer.add_indicator and imputer.indicator_ is not None:
        indicator = [int(i) for i in imputer.indicator_.features_]
    if len(rest) > 1:
        raise _unsupported(rest[1])
    return {
        "kind": "numeric",
        "columns": list(columns),
        "impute": [0.0 if np.isnan(s) else float(s) for s in statistics],
        "kept": kept,
        "indicator": indicator,
        "scale": _scaler_spec(rest[0]) if rest else None,
    }


def _encoding_spec(encoder: Any, index: int) -> dict[str, Any]:
    categories = list(encoder.categories_[index])
    infrequent = getattr(encoder, "infrequent_categories_", None)
    rare = set() if infrequent is None or infrequent[index] is None else set(infrequent[index])
    if isinstance(encoder, OneHotEncoder):
        if encoder.drop is not None or encoder.handle_unknown != "ignore":
            raise _unsupported(encoder)
        # Frequent categories in fitted order, then one shared column for the infrequent.
        frequent = [c for c in categories if c not in rare]
        codes = {category_key(c): i for i, c in enumerate(frequent)}
        codes.update({category_key(c): len(frequent) for c in rare})
        width = len(frequent) + (1 if rare else 0)
        return {"kind": "onehot", "codes": codes, "width": width}
    if isinstance(encoder, OrdinalEncoder):
        if rare or encoder.handle_unknown != "use_encoded_value":
            raise _unsupported(encoder)
        codes = {category_key(c): i for i, c in enumerate(categories)}
        return {"kind": "ordinal", "codes": codes, "unknown_value": float(encoder.unknown_value)}
    raise _unsupported(encoder)


def _categorical_spec(columns: list[str], pipeline: Pipeline) -> dict[str, Any]:
    steps = list(pipeline.named_steps.values())
    if len(steps) != 2 or not isinstance(steps[0], SimpleImputer):
        raise _unsupported(steps[0])
    imputer, encoder = steps
    if imputer.strategy not in ("most_frequent", "constant") or imputer.add_indicator:
        raise _unsupported(imputer)
    statistics = list(imputer.statistics_)
    if any(pd.isna(s) for s in statistics) and not imputer.keep_empty_features:
        empty = [c for c, s in zip(columns, statistics) if pd.isna(s)]
        raise ConfigError(
            f"categorical column(s) {', '.join(f'`{c}`' for c in empty)} have no values in the "
            "training rows; drop them with data.drop_columns."
        )
    return {
        "kind": "categorical",
        "columns": list(columns),
        "impute": [category_key(s) for s in statistics],
        "encodings": [_encoding_spec(encoder, i) for i in range(len(columns))],
    }


def export_preprocessor(
    transformer: ColumnTransformer, name: str, layout: list[str] | None = None
) -> dict[str, Any]:
    """The JSON parameters of one fitted ColumnTransformer (one model input).

    Args:
        transformer: fitted on the model's training rows.
        name: the ONNX input it feeds.
        layout: the model's input columns, if they are not exactly the transformer's
            outputs (an ensemble's fold-models take the union of all folds' columns).
    """
    blocks = []
    for _, pipeline, columns in transformer.transformers_:
        if pipeline == "drop" or len(columns) == 0:
            continue
        if not isinstance(pipeline, Pipeline):
            raise _unsupported(pipeline)
        first = next(iter(pipeline.named_steps.values()))
        if isinstance(first, SimpleImputer) and first.strategy in ("median", "mean"):
            blocks.append(_numeric_spec(list(columns), pipeline))
        else:
            blocks.append(_categorical_spec(list(columns), pipeline))
    spec: dict[str, Any] = {"name": name, "blocks": blocks}
    names = output_names(transformer)
    if layout is not None and list(layout) != names:
        index = {column: i for i, column in enumerate(layout)}
        absent = [n for n in names if n not in index]
        if absent:  # the layout is the union of the folds' outputs: a bug, not user input
            raise ValueError(f"preprocessing outputs {absent} are not in the model's layout")
        spec.update(width=len(layout), positions=[index[n] for n in names])
    return spec


def column_kinds(features: pd.DataFrame) -> list[dict[str, str]]:
    """The raw input columns, in the training file's order, with the kind each is read as."""
    numeric, _ = split_columns(features)
    return [
        {"name": str(c), "kind": "numeric" if c in numeric else "categorical"}
        for c in features.columns
    ]
