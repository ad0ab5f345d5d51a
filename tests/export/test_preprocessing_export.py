"""The exported preprocessing (JSON parameters applied with numpy) reproduces the fitted
scikit-learn ColumnTransformer exactly, for every option build_preprocessor has."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hpo.data.preprocessing import build_preprocessor, to_float32
from hpo.errors import DataError
from hpo.export.preprocessing import export_preprocessor
from hpo.export.transform import check_columns, transform_rows


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 3, n),
            "count": rng.integers(0, 50, n).astype(float),
            "weight": rng.lognormal(0, 1, n),
            # frequent a/b/c, then rare categories that max_categories folds together
            "colour": rng.choice(
                ["a", "b", "c", "d", "e", "f"], n, p=[0.4, 0.3, 0.2, 0.05, 0.03, 0.02]
            ),
            "shape": rng.choice(["round", "square"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "size"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = np.nan
    frame["colour"] = frame["colour"].astype(object)
    return frame


@pytest.mark.parametrize("scaling", ["standard", "robust", "minmax", "none"])
@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_json_preprocessing_matches_sklearn(scaling, encoding):
    cfg = SimpleNamespace(scaling=scaling, encoding=encoding, max_categories=4)
    train, other = _table(300, 0), _table(80, 1)
    other.loc[0, "colour"] = "never-seen"  # unknown: all-zero one-hot / unknown_value
    other.loc[1, "shape"] = "triangle"
    fitted = build_preprocessor(train, cfg).fit(train)
    spec = json.loads(json.dumps(export_preprocessor(fitted, "features")))  # plain JSON
    for rows in (train, other):
        expected = to_float32(fitted.transform(rows))
        np.testing.assert_array_equal(transform_rows(rows, spec), expected)


def test_infrequent_categories_share_one_column_and_indicators_mark_missing():
    cfg = SimpleNamespace(scaling="standard", encoding="onehot", max_categories=3)
    train = _table(300, 2)
    fitted = build_preprocessor(train, cfg).fit(train)
    spec = export_preprocessor(fitted, "features")
    numeric, categorical = spec["blocks"]
    assert numeric["indicator"] == [0]  # only `size` had missing values
    colour = categorical["encodings"][0]
    assert colour["width"] == 3  # two frequent categories + one infrequent column
    assert colour["codes"]["d"] == colour["codes"]["e"] == colour["codes"]["f"] == 2


def test_a_missing_column_is_named():
    with pytest.raises(DataError, match="`colour`"):
        check_columns(_table(5, 0).drop(columns=["colour"]), ["size", "colour"])


def test_a_text_value_in_a_numeric_column_is_named():
    cfg = SimpleNamespace(scaling="standard", encoding="onehot", max_categories=4)
    train = _table(50, 0)
    spec = export_preprocessor(build_preprocessor(train, cfg).fit(train), "features")
    bad = train.astype({"count": object})
    bad.loc[3, "count"] = "lots"
    with pytest.raises(DataError, match="`count`.*'lots'"):
        transform_rows(bad, spec)


def test_csv_rows_read_back_give_the_same_features(tmp_path):
    """`hpo predict` reads a CSV as training read its frame: text categories (also
    number-like ones), the configured missing-value markers as missing."""
    from hpo.export.predictor import ExportedModel, read_rows
    from hpo.export.preprocessing import column_kinds

    cfg = SimpleNamespace(scaling="standard", encoding="onehot", max_categories=4)
    train = _table(200, 3)
    train["grade"] = np.where(np.arange(200) % 3 == 0, "1", "2").astype(object)  # text
    spec = export_preprocessor(build_preprocessor(train, cfg).fit(train), "features")
    document = {"columns": column_kinds(train), "inputs": [spec]}
    model = ExportedModel({"na_values": ["?"]}, document, session=None)
    written = train.copy()
    written["colour"] = written["colour"].fillna("?")  # a missing-value marker in the file
    written.to_csv(tmp_path / "rows.csv", index=False)
    read = read_rows(tmp_path / "rows.csv", model)
    assert read["grade"].tolist() == train["grade"].tolist()
    np.testing.assert_array_equal(transform_rows(read, spec), transform_rows(train, spec))
