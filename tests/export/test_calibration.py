"""Temperature scaling: fitted on out-of-fold logits, inside the ONNX graph (no Ray)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict, train_test_split
from torch import nn

from hpo.export.calibration import (
    fit_temperature,
    mix_uniform,
    reliability,
    scaled_log_loss,
    smoothed_log_loss,
    softmax,
    uniform_weight,
)
from hpo.export.onnx_model import ExportGraph, check_onnx, export_onnx


@pytest.fixture(scope="module")
def overconfident():
    """Out-of-fold and held-out logits of a barely regularized logistic regression on
    digits: right most of the time, far too sure of itself."""
    X, y = load_digits(return_X_y=True)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    model = LogisticRegression(C=1e4, max_iter=300)
    oof = cross_val_predict(model, X_rest, y_rest, cv=3, method="decision_function")
    test = model.fit(X_rest, y_rest).decision_function(X_test)
    return oof, y_rest, test, y_test


def test_the_out_of_fold_temperature_lowers_the_held_out_log_loss(overconfident):
    oof, y_oof, test, y_test = overconfident
    temperature = fit_temperature(oof, y_oof)
    assert temperature > 1.5  # overconfident logits are softened
    assert scaled_log_loss(test, y_test, temperature) < 0.8 * scaled_log_loss(test, y_test, 1.0)
    ece_before = reliability(softmax(test), y_test)["ece"]
    assert reliability(softmax(test, temperature), y_test)["ece"] < ece_before


def test_the_temperature_minimizes_the_fitted_log_loss(overconfident):
    oof, y_oof, _, _ = overconfident
    best = fit_temperature(oof, y_oof)
    at_best = smoothed_log_loss(oof, y_oof, best)
    for other in (best * 0.8, best * 1.25):
        assert at_best <= smoothed_log_loss(oof, y_oof, other)


def test_error_free_rows_do_not_drive_the_probabilities_to_one():
    """A model right on every calibration row (its own training rows here, as a tuned
    MLP is on an easy table's folds): hard targets would want T -> 0 and p = 1.0."""
    X, y = load_digits(return_X_y=True)
    logits = LogisticRegression(C=1e4, max_iter=300).fit(X, y).decision_function(X)
    assert (logits.argmax(axis=1) == y).all()
    temperature = fit_temperature(logits, y)
    p_true = softmax(logits, temperature)[np.arange(len(y)), y]
    assert temperature > 1.0  # softened, not sharpened towards the search's bound
    assert 0.9 < p_true.mean() < 1 - 1 / (len(y) + 2)  # no surer than the smoothed targets
    assert scaled_log_loss(logits, y, temperature / 2) < scaled_log_loss(logits, y, temperature)


def test_reliability_bins_count_every_row_and_ece_is_zero_when_calibrated():
    y = np.array([0, 1, 1, 0])
    sure = np.eye(2)[y]  # right and certain: calibrated
    found = reliability(sure, y)
    assert found["ece"] == 0.0
    assert sum(b["rows"] for b in found["bins"]) == 4
    wrong = np.eye(2)[1 - y]  # wrong and certain: ECE 1
    assert reliability(wrong, y)["ece"] == 1.0


def test_the_onnx_graph_divides_its_logits_by_the_temperature(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    graph = ExportGraph(
        [model], "classification", [0.0], [1.0], temperature=2.5, uniform_weight=0.03
    )
    path = tmp_path / "model.onnx"
    export_onnx(graph, [x], path, "test")
    session = ort.InferenceSession(str(path))
    assert check_onnx(graph, session, [x])["passed"]
    (probabilities,) = session.run(None, {"features": x})
    with torch.inference_mode():
        logits = model(torch.as_tensor(x)).numpy().astype(np.float64)
    np.testing.assert_allclose(probabilities, mix_uniform(softmax(logits, 2.5), 0.03), atol=1e-5)
    assert probabilities.max() <= 1 - 0.03 + 0.01 + 1e-6
    assert (probabilities.argmax(axis=1) == logits.argmax(axis=1)).all()


@pytest.mark.parametrize(("rows", "classes"), [(275, 3), (1437, 10), (100, 2)])
def test_the_uniform_mix_caps_probabilities_at_platts_target(rows, classes):
    certain = np.eye(classes)[[0]]
    capped = mix_uniform(certain, uniform_weight(rows, classes))
    assert capped.max() == pytest.approx(1 - 1 / (rows + 2))
    assert capped.sum() == pytest.approx(1.0) and capped.argmax() == 0


def test_a_bad_calibration_method_names_the_key_and_the_choices():
    from omegaconf import OmegaConf

    from hpo.errors import ConfigError
    from hpo.export.calibration import calibration_method

    with pytest.raises(ConfigError, match=r"`export.calibration`.*temperature or none"):
        calibration_method(OmegaConf.create({"export": {"calibration": "platt"}}))
