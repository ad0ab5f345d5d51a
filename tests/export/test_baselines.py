"""Baselines: scikit-learn models on the sweep's own folds and test rows (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.data import prepare_data
from hpo.export.baselines import baseline_warnings, comparison, fit_baselines


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    from hpo.config import compose_config

    out = tmp_path_factory.mktemp("runs")
    cfg, _ = compose_config(["data=wine", "cv.folds=3", f"output_dir={out}"])
    return cfg, prepare_data(cfg)


def test_each_baseline_is_scored_on_every_fold_and_the_test_rows(wine):
    cfg, prepared = wine
    found = fit_baselines(prepared, cfg)
    names = [m["name"] for m in found["models"]]
    assert names == ["hist_gradient_boosting", "logistic_regression"]
    for model in found["models"]:
        assert model["test"]["rows"] == len(prepared.test_idx)
        assert {"val_loss", "val_accuracy", "val_f1_macro"} <= set(model["cv"])
        assert 0.8 < model["test"]["accuracy"] <= 1.0  # wine is easy for both
        assert model["fit_seconds"] > 0


def test_a_regression_baseline_reports_values_in_the_targets_units(tmp_path):
    from hpo.config import compose_config

    cfg, _ = compose_config(["data=diabetes", "cv.folds=3", f"output_dir={tmp_path}"])
    prepared = prepare_data(cfg)
    found = fit_baselines(prepared, cfg)
    spread = float(np.std(prepared.y[prepared.test_idx]))
    for model in found["models"]:
        assert 0.5 * spread < model["test"]["rmse"] < spread  # better than the mean, in units
        assert model["cv"]["val_rmse"]["mean"] > 10  # not the standardized scale


BASELINES = {
    "how": "",
    "models": [
        {
            "name": "logistic_regression",
            "estimator": "LogisticRegression()",
            "cv": {"val_loss": {"mean": 0.1, "std": 0.0}},
            "test": {"accuracy": 0.98, "f1_macro": 0.97, "log_loss": 0.11},
            "fit_seconds": 0.1,
            "cv_seconds": 0.3,
        }
    ],
}


@pytest.mark.parametrize(
    ("tuned", "wins"),
    [
        (
            {"accuracy": 0.95, "f1_macro": 0.95, "log_loss": 0.70},
            ["accuracy", "f1_macro", "log_loss"],
        ),
        ({"accuracy": 0.98, "f1_macro": 0.97, "log_loss": 0.30}, ["log_loss"]),
        ({"accuracy": 0.99, "f1_macro": 0.99, "log_loss": 0.05}, []),
    ],
)
def test_a_baseline_that_wins_is_named_in_the_warnings_and_the_table(tuned, wins):
    warnings = baseline_warnings("classification", tuned, BASELINES)
    assert len(warnings) == (1 if wins else 0)
    for name in wins:
        assert name in warnings[0]["message"]
        assert "logistic_regression" in warnings[0]["message"]
    best = {"metric": "val_loss", "cv_mean": 0.2}
    export = {"baselines": BASELINES, "model": {"strategy": "refit"}, "train_seconds": 3.0}
    table = comparison("classification", best, tuned, export)
    assert table["rows"][0]["model"] == "tuned (refit)"
    assert table["rows"][1]["wins"] == sorted(wins)
    assert table["rows"][1]["cv"] == 0.1


def test_a_bad_baselines_switch_names_the_key():
    from omegaconf import OmegaConf

    from hpo.errors import ConfigError
    from hpo.export.baselines import baselines_enabled

    with pytest.raises(ConfigError, match=r"`export.baselines`: must be true or false"):
        baselines_enabled(OmegaConf.create({"export": {"baselines": "yes"}}))
