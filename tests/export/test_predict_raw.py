"""`hpo predict` on raw rows of the training file: a real small sweep (local Ray,
Lightning) on a messy CSV (missing values, inconsistent spellings, stray text in numeric
columns, a string target), then predictions on the file's own lines, cleaned as training
cleaned them."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_tables import messy_frame
from export_runs import MESSY, sweep

from hpo.cli import main
from hpo.config import load_run_config
from hpo.data import prepare_data
from hpo.export.metrics import evaluate_predictions
from hpo.export.predictor import load_model

pytestmark = pytest.mark.slow


def _predict(run_dir: Path, source: Path, out: Path) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["predict", str(run_dir / "best"), str(source), "--output", str(out)])
    return code, printed.getvalue()


def _test_lines(csv: Path, run_dir: Path, out: Path) -> Path:
    """The test split's lines of the CSV, copied verbatim under its header."""
    prepared = prepare_data(load_run_config(run_dir))
    header, *lines = csv.read_text().splitlines()
    rows = prepared.positions[prepared.test_idx]  # row numbers in the file
    out.write_text("\n".join([header, *(lines[i] for i in rows)]) + "\n")
    return out


def _reproduces_the_report(run_dir: Path, csv: Path, tmp_path: Path) -> None:
    """Predict the test split's raw lines; the metrics equal report.json's test metrics."""
    report = json.loads((run_dir / "best" / "report.json").read_text())
    source = _test_lines(csv, run_dir, tmp_path / "test_rows.csv")
    code, printed = _predict(run_dir, source, tmp_path / "test_predictions.csv")
    assert code == 0, printed
    predictions = pd.read_csv(tmp_path / "test_predictions.csv")
    model = load_model(run_dir / "best")
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)  # the labels as written
    truth = model.true_values(raw["churned"])
    assert evaluate_predictions(model.manifest, truth, predictions) == report["test"]
    assert f"({report['test']['rows']} rows): accuracy {report['test']['accuracy']:.4f}" in printed


def test_predict_takes_the_raw_training_file(messy_run, tmp_path):
    csv, run_dir = messy_run
    code, printed = _predict(run_dir, csv, tmp_path / "out.parquet")
    assert code == 0, printed
    predictions = pd.read_parquet(tmp_path / "out.parquet")
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert len(predictions) == len(raw)  # every line, the dropped ones too
    # the labels as training normalized them (" Yes" -> "yes"), not class indices
    assert set(predictions["prediction"]) <= {"no", "yes"} and raw["churned"].eq(" Yes").any()
    np.testing.assert_allclose(predictions[["proba_no", "proba_yes"]].sum(axis=1), 1.0)
    # stray text in a numeric column is missing (imputed), and the user is told
    assert "column `income` is numeric but" in printed and "'unknown'" in printed
    known = raw["churned"].str.strip().isin(["yes", "Yes", "no", "No"]).sum()
    assert f"the input has the target column `churned` ({known} rows)" in printed


def test_predict_on_the_test_lines_reproduces_the_report(messy_run, tmp_path):
    csv, run_dir = messy_run
    _reproduces_the_report(run_dir, csv, tmp_path)


def test_extra_columns_are_ignored_and_the_target_is_optional(messy_run, tmp_path):
    csv, run_dir = messy_run
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    reshaped = raw.drop(columns=["churned"]).assign(extra="ignored")
    reshaped = reshaped[reshaped.columns[::-1]]  # column order does not matter either
    reshaped.to_csv(tmp_path / "reshaped.csv", index=False)
    assert _predict(run_dir, csv, tmp_path / "a.csv")[0] == 0
    code, printed = _predict(run_dir, tmp_path / "reshaped.csv", tmp_path / "b.csv")
    assert code == 0 and "target column" not in printed
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


def test_a_missing_required_column_fails_cleanly(messy_run, tmp_path, capsys):
    csv, run_dir = messy_run
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    raw.drop(columns=["city"]).to_csv(tmp_path / "no_city.csv", index=False)
    code, _ = _predict(run_dir, tmp_path / "no_city.csv", tmp_path / "out.csv")
    assert code == 2
    err = capsys.readouterr().err
    assert "`city`" in err and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


def test_ensemble_export_with_a_fold_narrower_than_the_layout(ray_local, tmp_path):
    """One city appears in one non-test row only: the fold whose validation part holds it
    never saw it, so its preprocessing has one column fewer than the folds' layout (the
    fold-models' input)."""
    frame = messy_frame()
    frame.loc[0, "city"] = "Lisbon"
    csv = tmp_path / "customers.csv"
    frame.to_csv(csv, index=True)
    run_dir, _ = sweep(tmp_path / "runs", *MESSY, f"data.path={csv}", "++export.strategy=ensemble")
    report = json.loads((run_dir / "best" / "report.json").read_text())
    assert report["model"]["strategy"] == "ensemble"
    assert report["onnx_check"]["passed"] and report["preprocessing_check"]["passed"]
    preprocessing = json.loads((run_dir / "best" / "preprocessing.json").read_text())
    assert len(preprocessing["inputs"]) == 3
    # the layout is the folds' columns in first-seen order: the narrow fold's columns, then
    # city_lisbon; the other folds' outputs hold it in the middle, so they are placed too
    # (16 wide: `plan`'s missing values are a category level of their own)
    widths = sorted(len(spec["positions"]) for spec in preprocessing["inputs"])
    assert widths == [15, 16, 16] and {s["width"] for s in preprocessing["inputs"]} == {16}
    _reproduces_the_report(run_dir, csv, tmp_path)


def test_the_report_shows_every_data_check_and_the_leakage_ranking(messy_run):
    csv, run_dir = messy_run
    report = json.loads((run_dir / "best" / "report.json").read_text())
    quality = json.loads((run_dir / "data_quality.json").read_text())
    assert report["data_quality"] == quality
    assert report["data"]["file"] == str(csv)
    html = (run_dir / "best" / "report.html").read_text()
    assert "<h2>Data quality</h2>" in html and f"hpo report: {csv.name}" in html
    section = html[html.index("<h2>Data quality</h2>") :]
    for check in quality["checks"]:  # every check, with its action
        assert f"<td>{check['title']}</td>" in section
        assert f"<td>{check['action']}</td>" in section
    ranking = next(c for c in quality["checks"] if c["name"] == "leakage")["ranking"]
    assert ranking[0]["column"] == "refund_issued" and ranking[0]["verdict"] == "flagged"
    assert "<td>refund_issued</td>" in section.split("<h3>Leakage")[1]
    kinds = [w["kind"] for w in report["warnings"]]
    assert "data: probable leakage" in kinds
