"""The report of a real sweep on a table with missing values: the baselines beside the
tuned model, its calibration, row numbers to join back, and a small run directory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hpo.cli import main
from hpo.config import load_run_config
from hpo.data import prepare_data
from hpo.export.report import ROW_COLUMN, TARGET_COLUMN
from hpo.sweep.summary import export_lines

pytestmark = pytest.mark.slow


def _report(run_dir) -> dict:
    return json.loads((run_dir / "best" / "report.json").read_text())


def test_the_baselines_stand_beside_the_tuned_model(messy_run):
    _, run_dir = messy_run
    report = _report(run_dir)
    rows = report["baselines"]["rows"]
    assert [r["model"] for r in rows] == [
        "tuned (refit)",
        "hist_gradient_boosting",
        "logistic_regression",
    ]
    assert rows[0]["test"]["accuracy"] == report["test"]["accuracy"]
    for row in rows[1:]:
        assert 0.0 <= row["test"]["accuracy"] <= 1.0 and row["fit_seconds"] > 0
        assert row["cv"] is not None  # the sweep's metric on the sweep's folds
    html = (run_dir / "best" / "report.html").read_text()
    assert "<h2>Baselines</h2>" in html and "logistic_regression" in html
    printed = "\n".join(export_lines(report, run_dir / "best", 1.0))
    assert "baseline hist_gradient_boosting (same split" in printed


def test_a_log_loss_above_the_linear_baselines_is_a_warning(messy_run):
    _, run_dir = messy_run
    report = _report(run_dir)
    linear = next(r for r in report["baselines"]["rows"] if r["model"] == "logistic_regression")
    warned = [
        w["message"]
        for w in report["warnings"]
        if w["kind"] == "a baseline wins" and "logistic_regression" in w["message"]
    ]
    if report["test"]["log_loss"] > linear["test"]["log_loss"]:
        assert warned and "log_loss" in warned[0]
        assert "log_loss" in linear["wins"]
    else:
        assert not any("log_loss" in m for m in warned)


def test_the_exported_model_gives_the_calibrated_probabilities(messy_run):
    _, run_dir = messy_run
    report = _report(run_dir)
    calibration = report["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert calibration["fit"]["rows"] == report["data"]["rows_non_test"]  # out-of-fold only
    assert calibration["test"]["rows"] == report["test"]["rows"]
    # the report's test metrics come from the exported ONNX model: the calibrated one
    assert report["test"]["log_loss"] == pytest.approx(
        calibration["test"]["log_loss_after"], abs=1e-4
    )
    assert (run_dir / "best" / "plots" / "reliability.png").is_file()
    assert "<h2>Calibration</h2>" in (run_dir / "best" / "report.html").read_text()


def test_test_predictions_carry_the_files_row_numbers(messy_run):
    csv, run_dir = messy_run
    frame = pd.read_parquet(run_dir / "best" / "test_predictions.parquet")
    prepared = prepare_data(load_run_config(run_dir))
    assert frame[ROW_COLUMN].tolist() == prepared.positions[prepared.test_idx].tolist()
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    labels = raw["churned"].str.strip().str.lower().to_numpy()[frame[ROW_COLUMN].to_numpy()]
    assert np.array_equal(labels, frame[TARGET_COLUMN].astype(str).str.lower().to_numpy())


def test_a_finished_sweep_keeps_no_trial_checkpoints(messy_run):
    _, run_dir = messy_run
    tune_dir = run_dir / "tune"
    assert list(tune_dir.glob("experiment_state-*.json"))  # what resume reads stays
    assert not list(tune_dir.glob("*/checkpoint_*"))


def test_a_row_with_every_value_missing_is_not_predicted_with_certainty(messy_run, tmp_path):
    csv, run_dir = messy_run
    header = csv.read_text().splitlines()[0]
    source = tmp_path / "empty_row.csv"
    source.write_text(header + "\n" + "," * header.count(",") + "\n")
    out = tmp_path / "predicted.csv"
    assert main(["predict", str(run_dir / "best"), str(source), "--output", str(out)]) == 0
    proba = pd.read_csv(out).filter(like="proba_").to_numpy()
    cap = _report(run_dir)["calibration"]["max_probability"]
    assert cap < 1.0 and proba.max() <= cap + 1e-6
