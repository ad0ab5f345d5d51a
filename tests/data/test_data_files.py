"""CSV and Parquet files through pyarrow: typed columns, column choice, the task inferred
and printed, string labels kept; `hpo check-data` prints the checks as a table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from data_tables import clean_frame, messy_frame, write_messy_csv

from hpo.cli import main
from hpo.data.files import read_frame
from hpo.data.prepare import inspect_data
from hpo.data.sources import load_table


def typed_frame(rows: int = 90) -> pd.DataFrame:
    frame = clean_frame(rows)
    frame["member"] = np.arange(rows) % 3 == 0  # bool
    frame["price"] = frame["x1"] * 10 + 50
    return frame


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_load_with_typed_columns(table_cfg, fmt):
    cfg = table_cfg(typed_frame(), fmt=fmt)
    table = load_table(cfg.data)
    assert pd.api.types.is_float_dtype(table.features["x1"])
    assert pd.api.types.is_integer_dtype(table.features["visits"])
    assert pd.api.types.is_bool_dtype(table.features["member"])
    assert table.target.name == "label" and "label" not in table.features
    prepared = inspect_data(cfg)
    assert prepared.cleaning["numeric"] == ["x1", "x2", "visits", "price"]
    assert prepared.cleaning["categorical"] == ["color", "member"]
    assert set(prepared.features["member"]) == {"true", "false"}
    assert prepared.classes == ["bad", "good"]  # string labels kept


def test_csv_and_parquet_of_one_table_prepare_the_same(table_cfg):
    frame = typed_frame()
    from_csv = inspect_data(table_cfg(frame, fmt="csv"))
    from_parquet = inspect_data(table_cfg(frame, fmt="parquet"))
    pd.testing.assert_frame_equal(from_csv.features, from_parquet.features)
    assert np.array_equal(from_csv.test_idx, from_parquet.test_idx)


def test_columns_and_drop_columns_choose_the_features(table_cfg):
    chosen = inspect_data(table_cfg(typed_frame(), "data.columns=[x1,color]"))
    assert list(chosen.features.columns) == ["x1", "color"]
    dropped = inspect_data(table_cfg(typed_frame(), "data.drop_columns=[price,member]"))
    assert list(dropped.features.columns) == ["x1", "x2", "visits", "color"]


def test_the_task_is_inferred_and_data_task_overrides(table_cfg):
    frame = typed_frame().drop(columns=["label"])
    assert inspect_data(table_cfg(frame, target="price")).task == "regression"
    assert inspect_data(table_cfg(frame, target="visits")).task == "classification"
    forced = inspect_data(table_cfg(frame, "data.task=regression", target="visits"))
    assert forced.task == "regression" and forced.classes is None


def test_numeric_target_with_stray_strings_is_coerced_for_regression(table_cfg):
    frame = typed_frame().drop(columns=["label"]).astype({"price": object})
    frame.loc[[2, 9], "price"] = "unknown"
    prepared = inspect_data(table_cfg(frame, target="price"))
    assert prepared.task == "regression" and len(prepared.y) == 88
    checks = {c.name: c for c in prepared.quality.checks}
    assert checks["stray_strings"].columns["price (target)"]["count"] == 2
    assert checks["missing_target"].rows == [2, 9]


def test_semicolon_csv_with_delimiter(tmp_path, small_cfg):
    path = tmp_path / "semi.csv"
    clean_frame().to_csv(path, index=False, sep=";")
    cfg = small_cfg("data=csv", f"data.path={path}", "data.target=label", "data.delimiter=';'")
    assert list(inspect_data(cfg).features.columns) == ["x1", "x2", "visits", "color"]


def test_read_frame_types_chosen_columns_as_text(tmp_path):
    path = tmp_path / "codes.csv"
    pd.DataFrame({"zip": ["01234", "75001"], "n": [1, 2]}).to_csv(path, index=False)
    assert read_frame(str(path), "csv")["zip"].tolist() == [1234, 75001]
    as_text = read_frame(str(path), "csv", string_columns=["zip"])
    assert as_text["zip"].tolist() == ["01234", "75001"]


def test_check_data_prints_the_task_and_a_row_per_check(capsys, tmp_path):
    path = write_messy_csv(tmp_path / "customers.csv")
    code = main(["check-data", "data=csv", f"data.path={path}", "data.target=churned"])
    out = capsys.readouterr().out
    assert code == 0
    assert "task: classification (inferred" in out and "'no', 'yes'" in out
    table = out[out.index("check ") :]
    for title in [
        "missing values",
        "stray strings",
        "category spellings",
        "all-empty columns",
        "constant columns",
        "ID-like columns",
        "rows without target",
        "duplicate rows",
        "duplicates across split",
        "probable leakage",
        "class imbalance",
    ]:
        assert title in table, title
    assert "refund_issued" in out and "warning: probable leakage" in out
    assert 'dropped "", country, customer_id, notes' in out


def test_check_data_json_matches_the_messy_tables_problems(capsys, tmp_path):
    path = write_messy_csv(tmp_path / "customers.csv")
    assert (
        main(["check-data", "--json", "data=csv", f"data.path={path}", "data.target=churned"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    frame = messy_frame()
    assert checks["duplicate_rows"]["rows"] == list(range(300, 305))
    assert checks["missing_target"]["count"] == int(frame["churned"].isna().sum())
    assert set(checks["stray_strings"]["columns"]) == {"income"}
    assert set(checks["inconsistent_categories"]["columns"]) == {"city", "churned (target)"}
    assert set(checks["id_columns"]["columns"]) == {"", "customer_id"}
    assert list(checks["leakage"]["columns"]) == ["refund_issued"]


def test_lines_before_the_header_are_skipped_when_asked(tmp_path, small_cfg):
    from hpo.errors import DataError

    path = tmp_path / "titled.csv"
    path.write_text("# exported 2026-01-01\n" + clean_frame().to_csv(index=False))
    base = ["data=csv", f"data.path={path}", "data.target=label"]
    with pytest.raises(DataError, match="data.skip_rows"):
        inspect_data(small_cfg(*base))
    assert len(inspect_data(small_cfg(*base, "data.skip_rows=1")).y) == 90


def test_whole_number_classes_read_as_floats_stay_integers(table_cfg):
    frame = clean_frame()
    frame["label"] = np.where(frame["label"] == "good", 1.0, 0.0)
    frame.loc[4, "label"] = np.nan  # a gap makes the CSV column float
    prepared = inspect_data(table_cfg(frame))
    assert prepared.classes == [0, 1] and all(type(c) is int for c in prepared.classes)
