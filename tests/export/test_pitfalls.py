"""The report's warnings fire on the pitfalls they name, and stay quiet otherwise."""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.export import pitfalls

SPACE = {
    "optim.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.num_layers": IntDistribution(1, 3),
    "model.hidden_dim": CategoricalDistribution([32, 64, 128]),
    "model.activation": CategoricalDistribution(["relu", "gelu", "silu"]),
}


def test_best_values_on_a_boundary_are_named():
    inside = {
        "optim.lr": 3e-3,
        "model.num_layers": 2,
        "model.hidden_dim": 64,
        "model.activation": "silu",
    }
    assert pitfalls.boundary_values(SPACE, inside) == []
    edge = {**inside, "optim.lr": 0.0999, "model.hidden_dim": 32}
    found = pitfalls.boundary_values(SPACE, edge)
    assert [w["kind"] for w in found] == ["search space boundary"] * 2
    assert "optim.lr" in found[0]["message"] and "upper bound" in found[0]["message"]
    assert "model.hidden_dim" in found[1]["message"] and "smallest" in found[1]["message"]


def test_test_far_below_cv_warns_only_beyond_noise():
    base = {"metric": "val_accuracy", "test_metric": "accuracy", "cv": 0.95, "cv_std": 0.01}
    assert pitfalls.heldout_below_cv({**base, "test": 0.94, "optimism": 0.01}) == []
    (warning,) = pitfalls.heldout_below_cv({**base, "test": 0.80, "optimism": 0.15})
    assert "0.8" in warning["message"]


def test_imbalance_matters_only_when_accuracy_is_the_metric():
    counts = {"yes": 90, "no": 10}
    assert pitfalls.imbalance_with_accuracy("val_loss", counts) == []
    assert pitfalls.imbalance_with_accuracy("val_accuracy", {"a": 50, "b": 40}) == []
    (warning,) = pitfalls.imbalance_with_accuracy("val_accuracy", counts)
    assert "val_f1_macro" in warning["message"]


def test_train_test_gap():
    assert pitfalls.train_test_gap("classification", {"accuracy": 0.99}, {"accuracy": 0.97}) == []
    assert pitfalls.train_test_gap("classification", {"accuracy": 1.0}, {"accuracy": 0.8})
    assert pitfalls.train_test_gap("regression", {"rmse": 10.0}, {"rmse": 20.0})
    assert pitfalls.train_test_gap("regression", {"rmse": 10.0}, {"rmse": 11.0}) == []
