"""Each quality check on a small real file that has exactly that problem: the check finds
it (count, columns or rows), hpo does what the check says, and no other check fires."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from data_tables import clean_frame

from hpo.data.prepare import inspect_data


def fired(prepared) -> dict:
    return {c.name: c for c in prepared.quality.checks if c.status != "ok"}


def test_a_clean_file_passes_every_check(table_cfg):
    prepared = inspect_data(table_cfg(clean_frame()))
    assert fired(prepared) == {}
    assert list(prepared.features.columns) == ["x1", "x2", "visits", "color"]
    assert prepared.cleaning["numeric"] == ["x1", "x2", "visits"]


def test_missing_values_in_their_usual_spellings_are_counted_per_column(tmp_path, table_cfg):
    frame = clean_frame().astype({"x1": object, "color": object})
    frame.loc[[1, 2, 3], "x1"] = ["", "NA", "?"]
    frame.loc[[4, 5], "color"] = ["N/A", "null"]
    prepared = inspect_data(table_cfg(frame))
    check = fired(prepared)["missing_values"]
    assert set(fired(prepared)) == {"missing_values"}
    assert check.columns == {"x1": 3, "color": 2} and check.count == 5
    assert prepared.features["x1"].dtype == np.float64  # still a number column
    assert prepared.features.loc[[1, 2, 3], "x1"].isna().all()


def test_na_values_are_configurable(table_cfg):
    frame = clean_frame().astype({"color": object})
    frame.loc[[7, 8], "color"] = "missing"
    default = inspect_data(table_cfg(frame))
    assert "missing" in set(default.features["color"])  # a category by default
    custom = inspect_data(table_cfg(frame, "data.na_values=[missing]"))
    assert fired(custom)["missing_values"].columns == {"color": 2}


def test_stray_strings_in_a_numeric_column_are_coerced_and_listed(table_cfg):
    frame = clean_frame().astype({"x2": object})
    frame.loc[[10, 20], "x2"] = ["unknown", "n/a "]
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"stray_strings"}
    found = fired(prepared)["stray_strings"].columns["x2"]
    assert found["count"] == 2 and set(found["values"]) == {"unknown", "n/a "}
    assert prepared.features["x2"].dtype == np.float64
    assert prepared.features.loc[[10, 20], "x2"].isna().all()
    assert "x2" in prepared.cleaning["numeric"]


def test_a_text_column_with_many_non_numbers_stays_categorical(table_cfg):
    frame = clean_frame().astype({"x2": object})
    frame.loc[:30, "x2"] = "text"  # a third of the column: not "a few strays"
    prepared = inspect_data(table_cfg(frame))
    assert "x2" in prepared.cleaning["categorical"]
    assert "stray_strings" not in fired(prepared)


def test_inconsistent_category_spellings_are_normalized_and_listed(table_cfg):
    frame = clean_frame()
    frame.loc[[0, 1, 2], "color"] = ["Red", " red", "RED "]
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"inconsistent_categories"}
    found = fired(prepared)["inconsistent_categories"].columns["color"]
    assert found["groups"] == 1 and found["count"] == 3
    assert set(found["examples"]["red"]) == {"red", "Red", " red", "RED "}
    assert set(prepared.features["color"]) == {"red", "green", "blue"}


def test_target_spellings_are_unified_to_the_most_frequent_label(table_cfg):
    frame = clean_frame()
    frame.loc[[0, 1], "label"] = [" Good", "GOOD"]
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"inconsistent_categories"}
    assert prepared.classes == ["bad", "good"]  # the user's own spelling, not a folded one


@pytest.mark.parametrize(
    ("column", "values", "check"),
    [
        ("notes", np.nan, "empty_columns"),
        ("country", "FR", "constant_columns"),
        ("customer_id", [f"C{i:04d}" for i in range(90)], "id_columns"),
        ("row", np.arange(90), "id_columns"),
    ],
)
def test_empty_constant_and_id_like_columns_are_dropped(table_cfg, column, values, check):
    frame = clean_frame()
    frame.insert(0, column, values)
    prepared = inspect_data(table_cfg(frame))
    # an all-empty column is also missing in every row
    expected = {check, "missing_values"} if check == "empty_columns" else {check}
    assert set(fired(prepared)) == expected
    assert list(fired(prepared)[check].columns) == [column]
    assert column not in prepared.features.columns
    assert column in prepared.quality.result["dropped_columns"]


def test_id_columns_are_kept_when_asked_and_still_reported(table_cfg):
    frame = clean_frame()
    frame.insert(0, "customer_id", [f"C{i:04d}" for i in range(90)])
    prepared = inspect_data(table_cfg(frame, "data.drop_id_columns=false"))
    assert fired(prepared)["id_columns"].status == "warning"
    assert "customer_id" in prepared.features.columns


def test_distinct_measurements_are_not_mistaken_for_ids(table_cfg):
    frame = clean_frame()
    frame["weight"] = np.random.default_rng(1).permutation(90) * 1.5 + 50.25
    frame["income"] = np.random.default_rng(2).choice(100_000, 90, replace=False)
    prepared = inspect_data(table_cfg(frame))
    assert "id_columns" not in fired(prepared)
    assert {"weight", "income"} <= set(prepared.features.columns)


def test_rows_without_a_target_are_dropped_and_listed(table_cfg):
    frame = clean_frame()
    frame.loc[[5, 50], "label"] = np.nan
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"missing_target", "missing_values"}
    assert fired(prepared)["missing_target"].rows == [5, 50]
    assert len(prepared.y) == 88 and 5 not in prepared.positions


def test_exact_duplicate_rows_are_dropped_before_the_split(table_cfg):
    frame = clean_frame()
    frame = pd.concat([frame, frame.iloc[[3, 4, 5]]], ignore_index=True)  # rows 90-92
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"duplicate_rows"}
    assert fired(prepared)["duplicate_rows"].rows == [90, 91, 92]
    assert len(prepared.y) == 90
    assert len(prepared.train_idx) + len(prepared.test_idx) == 90


def test_duplicates_are_kept_when_asked_and_counted_across_the_split(table_cfg):
    frame = clean_frame(rows=60)
    frame = pd.concat([frame, frame], ignore_index=True)  # every row twice
    prepared = inspect_data(table_cfg(frame, "data.drop_duplicates=false"))
    assert fired(prepared)["duplicate_rows"].count == 60
    across = fired(prepared)["duplicates_across_split"]
    # each test row whose twin landed in the non-test rows is counted
    twins = prepared.positions % 60
    test_twins = twins[prepared.test_idx]
    expected = int(np.isin(test_twins, twins[prepared.train_idx]).sum())
    assert across.count == expected > 0


def test_same_features_with_another_target_across_the_split_are_reported(table_cfg):
    frame = clean_frame(rows=80)
    copies = frame.iloc[:40].copy()
    copies["label"] = np.where(copies["label"] == "good", "bad", "good")  # not exact duplicates
    prepared = inspect_data(table_cfg(pd.concat([frame, copies], ignore_index=True)))
    assert set(fired(prepared)) == {"duplicates_across_split"}
    check = fired(prepared)["duplicates_across_split"]
    assert check.count > 0 and "0 with the same target" in check.detail


def test_a_column_that_alone_predicts_the_target_is_flagged_not_dropped(table_cfg):
    frame = clean_frame()
    frame["refund"] = np.where(frame["label"] == "good", "no", "yes")
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"leakage"}
    assert list(fired(prepared)["leakage"].columns) == ["refund"]
    assert "refund" in prepared.features.columns


def test_leakage_in_a_numeric_column_and_a_regression_target(table_cfg):
    frame = clean_frame()
    frame["price"] = frame["x1"] * 3 + frame["x2"] + np.random.default_rng(0).normal(size=90)
    frame["price_with_tax"] = frame["price"] * 1.2
    frame = frame.drop(columns=["label"])
    prepared = inspect_data(table_cfg(frame, target="price"))
    assert prepared.task == "regression"
    assert list(fired(prepared)["leakage"].columns) == ["price_with_tax"]


def test_class_imbalance_is_reported_with_the_ratio(table_cfg):
    frame = clean_frame(rows=120)
    frame["label"] = ["rare"] * 12 + ["common"] * 108
    prepared = inspect_data(table_cfg(frame))
    assert set(fired(prepared)) == {"class_imbalance"}
    check = fired(prepared)["class_imbalance"]
    assert check.count == pytest.approx(9.0) and check.columns == {"common": 108, "rare": 12}
    assert "val_f1_macro" in check.detail


def test_quality_report_is_json_with_every_check(table_cfg, tmp_path):
    frame = clean_frame()
    frame.loc[3, "x1"] = np.nan
    prepared = inspect_data(table_cfg(frame))
    path = prepared.quality.write(tmp_path)
    saved = json.loads(path.read_text())
    names = [c["name"] for c in saved["checks"]]
    assert names == [
        "missing_values",
        "stray_strings",
        "inconsistent_categories",
        "empty_columns",
        "constant_columns",
        "id_columns",
        "missing_target",
        "duplicate_rows",
        "duplicates_across_split",
        "leakage",
        "class_imbalance",
    ]
    assert saved["checks"][0]["columns"] == {"x1": 1}
    assert saved["result"]["task"] == "classification" and saved["source"]["rows"] == 90


def _follow_up_table(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Patients: two weak risk factors, and the follow-up time, which is recorded after
    the outcome (those with the event were followed for less time)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, rows)
    dose = rng.choice(["low", "high"], rows)
    risk = (age - 60) / 20 + (dose == "low") * 0.3 + rng.normal(size=rows)
    event = risk > np.quantile(risk, 0.6)
    follow_up = np.where(event, rng.gamma(2.0, 200, rows), rng.gamma(2.0, 600, rows))
    return pd.DataFrame(
        {
            "age": age,
            "dose": dose,
            "follow_up_days": follow_up,
            "label": np.where(event, "died", "alive"),
        }
    )


def test_a_column_recorded_after_the_outcome_stands_out_with_its_scores(table_cfg):
    prepared = inspect_data(table_cfg(_follow_up_table()))
    check = fired(prepared)["leakage"]
    assert check.status == "warning"
    assert list(check.columns) == ["follow_up_days"] and check.columns["follow_up_days"].startswith(
        "suspect AUC"
    )
    ranking = check.ranking
    assert [r["column"] for r in ranking][0] == "follow_up_days"
    assert {r["column"] for r in ranking} == {"age", "dose", "follow_up_days"}  # every column
    top, *rest = ranking
    assert top["verdict"] == "suspect" and top["score"] < 0.98 and top["auc"] > 0.75
    assert all(r["verdict"] == "" and r["skill"] < top["skill"] / 2 for r in rest)
    assert "follow_up_days" in prepared.features.columns  # flagged, kept


def test_several_strong_columns_alike_are_no_suspects(table_cfg):
    frame = _follow_up_table()
    frame["follow_up_weeks"] = frame["follow_up_days"] / 7 + np.random.default_rng(1).normal(
        size=len(frame)
    )
    check = {c.name: c for c in inspect_data(table_cfg(frame)).quality.checks}["leakage"]
    assert check.count == 0 and check.ranking[0]["skill"] > 0.5
