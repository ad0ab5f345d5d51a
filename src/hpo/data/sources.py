"""Data sources: the built-in datasets (scikit-learn's bundled ones, offline) and files
(CSV, Parquet: hpo.data.files)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn import datasets

from hpo.errors import DataError

BUILTIN = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
    "diabetes": datasets.load_diabetes,
}


@dataclass
class Table:
    """Features and target as loaded, before any fitting."""

    features: pd.DataFrame
    target: pd.Series
    name: str


def load_table(data_cfg) -> Table:
    """Load the configured data source."""
    source = data_cfg.source
    if source in ("csv", "parquet"):
        from hpo.data.files import load_file  # pyarrow only when a file is asked for

        return load_file(data_cfg)
    if source != "builtin":
        raise DataError(
            f"config key `data.source`: unknown source {source!r}; use builtin, csv or parquet."
        )
    table = load_builtin(data_cfg.name)
    if data_cfg.get("columns") or data_cfg.get("drop_columns"):
        from hpo.data.files import wanted_columns

        available = [*table.features.columns, table.target.name]
        chosen = wanted_columns(available, data_cfg, target=table.target.name)
        table.features = table.features[[c for c in chosen if c != table.target.name]]
    return table


def load_builtin(name: str) -> Table:
    if name not in BUILTIN:
        raise DataError(
            f"config key `data.name`: no built-in dataset {name!r}; choose one of "
            f"{', '.join(BUILTIN)} or use data=csv / data=parquet with data.path."
        )
    bunch = BUILTIN[name](as_frame=True)
    features = bunch.data.copy()
    features.columns = [str(c) for c in features.columns]
    target = bunch.target.copy()
    if name != "diabetes" and hasattr(bunch, "target_names"):
        target = target.map(dict(enumerate(str(n) for n in bunch.target_names)))
    target.name = "target"
    return Table(features=features, target=target, name=name)
