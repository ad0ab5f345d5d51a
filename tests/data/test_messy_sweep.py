"""A real sweep (local Ray, Lightning modules) on a messy CSV: missing values, stray
strings, categorical columns, a string target. It completes, writes data_quality.json
into the run directory and prints the data warnings."""

from __future__ import annotations

import io
import json
import math

import pytest
from data_tables import write_messy_csv

from hpo.config import compose_config
from hpo.sweep import run_sweep

pytestmark = pytest.mark.slow


def test_sweep_on_a_messy_csv_completes(ray_local, tmp_path):
    path = write_messy_csv(tmp_path / "customers.csv")
    cfg, _ = compose_config(
        [
            "data=csv",
            f"data.path={path}",
            "data.target=churned",
            "cv.folds=3",
            "trainer.max_epochs=4",
            "budget.num_samples=3",
            "scheduler.grace_period=1",
            f"output_dir={tmp_path / 'runs'}",
        ]
    )
    printed = io.StringIO()
    result = run_sweep(cfg, stream=printed)
    assert result.counts.get("failed", 0) == 0 and sum(result.counts.values()) == 3
    assert math.isfinite(result.best["cv_mean"])
    prepared = result.prepared
    assert prepared.classes == ["no", "yes"]  # the file's own labels
    assert {"city", "plan", "refund_issued"} <= set(prepared.cleaning["categorical"])
    assert prepared.trial_data.input_dim == len(prepared.trial_data.feature_names)

    saved = json.loads((result.run_dir / "data_quality.json").read_text())
    found = {c["name"]: c for c in saved["checks"] if c["status"] != "ok"}
    assert {"missing_values", "stray_strings", "id_columns", "leakage"} <= set(found)
    assert saved["result"]["task"] == "classification"
    assert "hpo: data warning: probable leakage" in printed.getvalue()
