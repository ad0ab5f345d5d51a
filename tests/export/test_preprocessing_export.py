"""The exported preprocessing (JSON parameters applied with numpy) reproduces the fitted
scikit-learn ColumnTransformer exactly, for every option build_preprocessor has."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hpo.data.clean import clean_features, plan_cleaning
from hpo.data.preprocessing import build_preprocessor, to_float32
from hpo.errors import DataError
from hpo.export.preprocessing import export_preprocessor
from hpo.export.transform import transform_rows


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


def _cleaning(frame: pd.DataFrame, na_values: list[str]) -> dict:
    """The cleaning spec training decides for this frame (hpo.data.clean)."""
    cfg = SimpleNamespace(na_values=na_values, normalize_categories=True, max_stray_fraction=0.05)
    spec, _ = plan_cleaning(frame, cfg)
    return spec


def _model(train: pd.DataFrame, cleaning: dict, layout: list[str] | None = None):
    """An ExportedModel (no ONNX session: only its cleaning and preprocessing are used)."""
    from hpo.export.predictor import ExportedModel
    from hpo.export.preprocessing import column_kinds

    cfg = SimpleNamespace(scaling="standard", encoding="onehot", max_categories=4)
    cleaned = clean_features(train, cleaning)
    fitted = build_preprocessor(cleaned, cfg).fit(cleaned)
    document = {
        "cleaning": cleaning,
        "columns": column_kinds(cleaned),
        "inputs": [export_preprocessor(fitted, "features", layout)],
    }
    return ExportedModel({"delimiter": ","}, json.loads(json.dumps(document)), session=None)


def test_a_missing_column_is_named():
    train = _table(50, 0)
    model = _model(train, _cleaning(train, []))
    with pytest.raises(DataError, match="`colour`"):
        model.features(train.drop(columns=["colour"]))


def test_text_in_a_numeric_column_is_missing_and_named():
    """Cleaning turns stray text into a missing value (imputed, as in training); the
    predictor lists the values it could not read."""
    train = _table(50, 0)
    model = _model(train, _cleaning(train, ["?"]))
    raw = train.astype({"count": object})
    raw.loc[3, "count"] = "lots"
    raw.loc[4, "count"] = "?"  # a missing-value marker is not an unreadable number
    expected = train.copy()
    expected.loc[[3, 4], "count"] = np.nan
    features = model.features(raw)["features"]
    np.testing.assert_array_equal(features, model.features(expected)["features"])
    assert model.unreadable_numbers(raw, model.clean(raw)) == {"count": (1, ["lots"])}


def test_outputs_go_to_their_place_in_a_wider_layout():
    """A fold-model's input is the union of all folds' columns; a fold whose train part
    lacks a category (and has no missing value) fills only its own columns."""
    from hpo.data.preprocessing import merge_layouts, output_names
    from hpo.data.preprocessing import transform_rows as sklearn_rows

    cfg = SimpleNamespace(scaling="standard", encoding="onehot", max_categories=10)
    frame = _table(200, 4)
    part = frame[(frame["colour"] != "c") & frame["size"].notna()]
    narrow, full = (
        build_preprocessor(part, cfg).fit(part),
        build_preprocessor(frame, cfg).fit(frame),
    )
    layout = merge_layouts([output_names(narrow), output_names(full)])
    assert output_names(narrow) != layout  # the case under test
    spec = json.loads(json.dumps(export_preprocessor(narrow, "features_0", layout)))
    rows = np.arange(len(frame))
    expected = sklearn_rows(narrow, frame, rows, layout)
    np.testing.assert_array_equal(transform_rows(frame, spec), expected)
    assert "positions" not in export_preprocessor(full, "features_1", output_names(full))


def test_csv_rows_read_back_give_the_same_features(tmp_path):
    """`hpo predict` reads a CSV as training read its file: text categories (also
    number-like ones), the configured missing-value markers as missing, and cleans it
    the same way (spellings, stray text)."""
    from hpo.export.predictor import read_rows

    train = _table(200, 3)
    # a categorical code, some codes number-like: in a file holding only those, pyarrow
    # alone would read numbers (7, not "007")
    train["grade"] = np.array(["007", "010", "A"], dtype=object)[np.arange(200) % 3]
    model = _model(train, _cleaning(train, ["?"]))
    assert "grade" in model.cleaning["categorical"]
    written = train[train["grade"] != "A"].reset_index(drop=True)
    expected = model.features(written)["features"]
    written["colour"] = written["colour"].fillna("?")  # a missing-value marker in the file
    written["shape"] = written["shape"].str.upper() + " "  # another spelling, one category
    written.to_csv(tmp_path / "rows.csv", index=False)
    read = read_rows(tmp_path / "rows.csv", model)
    assert set(read["grade"]) == {"007", "010"}
    np.testing.assert_array_equal(model.features(read)["features"], expected)


@pytest.mark.parametrize(
    "classes, raw, expected",
    [
        (
            ["no", "yes"],
            [" Yes", "no", "NO ", "?", None, "maybe"],
            ["yes", "no", "no", None, None, "maybe"],
        ),
        ([0, 1], [1.0, 0, "1", None], [1, 0, 1, None]),
    ],
)
def test_a_raw_target_column_is_matched_to_the_classes(classes, raw, expected):
    """Scoring raw rows: labels normalized as training normalized them; an unknown label
    stays as written (so the metrics name it), an empty one is missing."""
    from hpo.export.predictor import ExportedModel

    model = ExportedModel(
        {"task": "classification", "classes": classes}, {"cleaning": {"na_values": ["?"]}}, None
    )
    got = model.true_values(pd.Series(raw, dtype=object)).tolist()
    assert [None if pd.isna(v) else v for v in got] == expected
    assert [type(v) for v in got if not pd.isna(v)] == [type(v) for v in expected if v is not None]


def test_integer_class_labels_read_back_as_floats_still_match():
    # digits' target arrives as floats (0.0 .. 9.0) while the model's classes are ints.
    import numpy as np

    from hpo.export.metrics import class_indices

    assert class_indices(np.array([0.0, 1.0, 9.0]), list(range(10))).tolist() == [0, 1, 9]
    assert class_indices(np.array(["1", "7"]), list(range(10))).tolist() == [1, 7]
