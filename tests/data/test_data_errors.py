"""Bad input fails before any Ray work: one line naming the problem and the fix, exit code
2, no traceback (unless asked for), and no run directory left behind."""

from __future__ import annotations

import numpy as np
import pytest
from data_tables import clean_frame

from hpo.cli import main


def run_cli(capsys, args: list[str], command: str = "sweep") -> tuple[int, str]:
    code = main([command, *args])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpo: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _frame_without_label_values():
    frame = clean_frame()
    frame["label"] = np.nan
    return frame


def _frame_with_one_class():
    frame = clean_frame()
    frame["label"] = "good"
    return frame


def _frame_with_text_price():
    frame = clean_frame().rename(columns={"label": "price"})
    return frame


def _frame_without_features():
    frame = clean_frame()[["label"]]
    frame.insert(0, "customer_id", [f"C{i:03d}" for i in range(len(frame))])
    frame.insert(1, "country", "FR")
    return frame


BAD_INPUTS = {
    "target missing": (clean_frame(), ["data.target=churn"], "`churn`", "x1, x2, visits"),
    "target all missing": (_frame_without_label_values(), [], "`label` has no values"),
    "one class only": (_frame_with_one_class(), [], "one class only", "'good'"),
    "too few rows": (clean_frame(rows=8), [], "8 rows are too few", "lower cv.folds"),
    "regression target not numeric": (
        _frame_with_text_price(),
        ["data.target=price", "data.task=regression"],
        "data.task=regression needs a numeric target",
        "`price`",
    ),
    "no feature left": (
        _frame_without_features(),
        [],
        "no feature columns are left",
        "customer_id",
        "country",
    ),
    "unknown feature column": (clean_frame(), ["data.columns=[x1,size]"], "data.columns", "size"),
    "unknown group column": (clean_frame(), ["data.group_column=shop"], "`shop`"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_tables_fail_with_one_line_and_no_run_directory(capsys, file_args, tmp_path, case):
    frame, overrides, *needles = BAD_INPUTS[case]
    args = file_args(frame, *overrides)
    assert_one_line_error(*run_cli(capsys, args), *needles)
    assert not (tmp_path / "runs").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.scaling=zscore", "data.scaling"),
        ("data.encoding=target", "data.encoding"),
        ("data.leakage_threshold=2", "data.leakage_threshold"),
    ],
)
def test_bad_data_options_fail_in_check_data_too(capsys, file_args, override, key):
    args = file_args(clean_frame(), override)
    assert_one_line_error(*run_cli(capsys, args, "check-data"), f"`{key}`")


def test_missing_file(capsys, tmp_path):
    args = ["data=csv", f"data.path={tmp_path / 'nope.csv'}", "data.target=y"]
    assert_one_line_error(*run_cli(capsys, args), "data.path", "no file at", "nope.csv")


@pytest.mark.parametrize(
    ("content", "fmt", "needles"),
    [
        (b"", "csv", ("empty (0 bytes)",)),
        (b"x1,x2,label\n", "csv", ("a header but no rows",)),
        (b"a,b,label\n1,2,x\n1,2,3,4,5\n", "csv", ("cannot read", "as csv", "data.delimiter")),
        (b"PK\x03\x04 this is a zip, not parquet" * 10, "parquet", ("cannot read", "as parquet")),
    ],
)
def test_unreadable_or_empty_files(capsys, file_args, tmp_path, content, fmt, needles):
    args = file_args(content, fmt=fmt)
    assert_one_line_error(*run_cli(capsys, args), *needles)
    assert not (tmp_path / "runs").exists()


def test_path_and_target_are_required(capsys, file_args):
    assert_one_line_error(*run_cli(capsys, ["data=csv"]), "data.path", "data.target=COLUMN")
    args = [a for a in file_args(clean_frame()) if not a.startswith("data.target")]
    assert_one_line_error(*run_cli(capsys, args), "data.target", "x1, x2, visits, color, label")


def test_check_data_fails_the_same_way(capsys, file_args):
    args = file_args(_frame_with_one_class())
    assert_one_line_error(*run_cli(capsys, args, "check-data"), "one class only")


def test_full_error_shows_the_traceback(capsys, file_args, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    code, err = run_cli(capsys, file_args(_frame_with_one_class()))
    assert code == 2 and "Traceback" in err and "DataError" in err
