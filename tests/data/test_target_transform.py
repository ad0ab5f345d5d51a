"""data.target_transform on real tables: auto picks log for a positive, right-skewed target
(serum triglycerides) and nothing for diabetes' own target; it is decided on the non-test
rows; explicit choices outside their domain fail with one line naming the key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_tables import write_triglycerides_csv

from hpo.data import inspect_data, prepare_data
from hpo.data.target_transform import SKEW_THRESHOLD, choose, forward, inverse, skewness
from hpo.errors import ConfigError


@pytest.fixture
def triglycerides_cfg(tmp_path, small_cfg):
    path = write_triglycerides_csv(tmp_path / "triglycerides.csv")

    def make(*overrides: str):
        return small_cfg("data=csv", f"data.path={path}", "data.target=triglycerides", *overrides)

    return make


def test_auto_takes_the_log_of_a_skewed_positive_target_fitted_on_the_non_test_rows(
    triglycerides_cfg,
):
    prepared = prepare_data(triglycerides_cfg())
    chosen = prepared.target_transform
    y_rest = prepared.y[prepared.train_idx]
    assert chosen.name == "log" and chosen.setting == "auto"
    assert chosen.skewness == pytest.approx(skewness(y_rest)) and chosen.skewness > SKEW_THRESHOLD
    assert abs(chosen.skewness_after) < 0.5  # the log made it nearly symmetric
    assert prepared.quality.result["target_transform"]["name"] == "log"
    for fold in prepared.trial_data.folds:
        # the fold learns log(y) standardized by its own train part
        logs = np.log(y_rest[fold.train_rows])
        assert fold.target_transform == "log"
        assert (fold.y_mean, fold.y_std) == pytest.approx((logs.mean(), logs.std()), rel=1e-6)
        back = inverse("log", fold.y_val.astype(np.float64) * fold.y_std + fold.y_mean)
        np.testing.assert_allclose(back, y_rest[fold.val_rows], rtol=1e-5)


def test_the_test_split_takes_no_part_in_the_choice(triglycerides_cfg):
    cfg = triglycerides_cfg()
    prepared = inspect_data(cfg)
    table = prepared.table
    # the test rows' targets made far more skewed: the decision and its figures do not move
    target = table.target.copy()
    target.iloc[prepared.test_idx] = target.iloc[prepared.test_idx] ** 3
    moved = inspect_data(cfg, type(table)(table.features, target, table.name))
    assert moved.target_transform == prepared.target_transform


def test_auto_leaves_a_mild_or_signed_target_alone_and_explicit_choices_are_checked(small_cfg):
    diabetes = inspect_data(small_cfg("data=diabetes"))  # skewness 0.44
    assert diabetes.target_transform.name == "none"
    assert "skewness 0.4" in diabetes.target_transform.reason
    signed = np.array([-3.0, 0.0, 1.0, 1.0, 2.0, 50.0])  # skewed, but not >= 0
    assert choose(signed, "auto", "regression", "y").name == "none"
    with_zeros = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 50.0])
    assert choose(with_zeros, "auto", "regression", "y").name == "log1p"
    assert choose(with_zeros, "log1p", "regression", "y").name == "log1p"
    with pytest.raises(ConfigError, match=r"`data.target_transform`: log needs .* use log1p"):
        choose(with_zeros, "log", "regression", "y")
    with pytest.raises(ConfigError, match="`data.target_transform`: log applies to a regression"):
        inspect_data(small_cfg("data=iris", "++data.target_transform=log"))
    with pytest.raises(ConfigError, match="`data.target_transform`: must be one of auto, none"):
        inspect_data(small_cfg("data=diabetes", "data.target_transform=sqrt"))
    # outside the domain (a test row below every training value) is floored, not NaN
    assert np.isfinite(forward("log", np.array([0.0, -1.0]))).all()
    assert inverse("log1p", forward("log1p", pd.Series([0.0, 9.0]).to_numpy())).tolist() == [
        0.0,
        pytest.approx(9.0),
    ]


def test_training_metrics_are_in_the_targets_units(triglycerides_cfg):
    """A fold's reported rmse/mae (val_rmse, val_mae) are scikit-learn's on its validation rows, in
    mg/dL, from the model's outputs with the standardization and the log undone."""
    import torch
    from omegaconf import OmegaConf
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    from hpo.train import FoldTrainer

    cfg = triglycerides_cfg("trainer.max_epochs=1")
    prepared = prepare_data(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)
    trainer = FoldTrainer(
        prepared.trial_data, plain["model"], plain["optim"], plain["trainer"], seed=0
    )
    while not trainer.finished:
        trainer.run_epoch()
    y_rest = prepared.y[prepared.train_idx]
    for fold, module, history in zip(
        prepared.trial_data.folds, trainer.fold_modules(best=False), trainer.fold_histories()
    ):
        with torch.inference_mode():
            out = module(torch.as_tensor(fold.X_val)).reshape(-1).double().numpy()
        predicted = np.exp(out * fold.y_std + fold.y_mean)
        truth = y_rest[fold.val_rows]
        assert history[-1]["rmse"] == pytest.approx(
            root_mean_squared_error(truth, predicted), rel=1e-4
        )
        assert history[-1]["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-4)
        assert 10 < history[-1]["rmse"] < 10 * truth.std()  # mg/dL, not log units
