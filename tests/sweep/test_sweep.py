"""Real sweeps on a real local Ray (2 CPUs), small built-in data, a few epochs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from hpo.sweep import run_sweep

pytestmark = pytest.mark.slow

SPACE_KEYS = {
    "optim.lr",
    "optim.weight_decay",
    "model.hidden_dim",
    "model.num_layers",
    "model.dropout",
    "model.activation",
}


@pytest.fixture(scope="module")
def asha_sweep(ray_local, tmp_path_factory):
    """One ASHA + TPE sweep shared by the assertions below (sequential, so ASHA decides)."""
    from hpo.config import compose_config

    out = tmp_path_factory.mktemp("asha")
    cfg, _ = compose_config(
        [
            "data=iris",
            "cv.folds=3",
            "trainer.max_epochs=8",
            "trainer.patience=8",
            "budget.num_samples=10",
            "budget.max_concurrent_trials=1",
            "scheduler.grace_period=1",
            "scheduler.reduction_factor=2",
            "searcher.n_startup_trials=4",
            "optim.lr=tag(log, interval(1e-4, 1e-1))",
            f"output_dir={out}",
        ]
    )
    return cfg, run_sweep(cfg, stream=None)


def test_run_directory_holds_config_trials_and_best(asha_sweep):
    cfg, result = asha_sweep
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "trials.parquet", "best_trial.json", "tune"} <= names
    assert any(result.run_dir.joinpath("tune").glob("experiment_state-*.json"))
    from omegaconf import OmegaConf

    saved = OmegaConf.load(result.run_dir / "config.yaml")
    assert saved.search_space["optim.lr"] == "tag(log, interval(1e-4, 1e-1))"


def test_trials_parquet_schema_has_one_row_per_epoch(asha_sweep):
    cfg, result = asha_sweep
    frame = pd.read_parquet(result.run_dir / "trials.parquet")
    for column in [
        "trial_id",
        "trial_index",
        "status",
        "epoch",
        "val_loss",
        "val_loss_std",
        "val_accuracy",
        "val_f1_macro",
        "val_precision_macro",
        "val_recall_macro",
        "train_loss",
        "fold_val_loss",
        "fold_best_epochs",
        *SPACE_KEYS,
    ]:
        assert column in frame.columns, column
    assert frame["trial_id"].nunique() == 10
    assert set(frame["status"]) <= {"completed", "stopped", "failed"}
    per_trial = frame.groupby("trial_id")["epoch"].agg(["min", "max", "count"])
    assert (per_trial["min"] == 1).all() and (per_trial["count"] == per_trial["max"]).all()
    lengths = frame["fold_val_loss"].map(len)
    assert (lengths == 3).all()
    # fold mean reported == mean of the per-fold values
    means = frame["fold_val_loss"].map(np.mean)
    assert np.allclose(means, frame["val_loss"], atol=1e-6)


def test_asha_stopped_trials_and_optuna_saw_them_as_pruned(asha_sweep):
    cfg, result = asha_sweep
    frame = result.trials
    status = frame.groupby("trial_id")["status"].last()
    assert (status == "stopped").sum() >= 1
    assert result.counts["stopped"] == (status == "stopped").sum()
    study = result.study
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == (status == "stopped").sum()
    assert states.count(TrialState.COMPLETE) == (status == "completed").sum()
    last_epoch = frame.groupby("trial_id")["epoch"].max()
    stopped_epochs = sorted(last_epoch[status == "stopped"].tolist())
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    # every intermediate value was told, including the one that made ASHA stop the trial
    assert sorted(max(t.intermediate_values) for t in pruned) == stopped_epochs
    for t in pruned:
        assert sorted(t.intermediate_values) == list(range(1, max(t.intermediate_values) + 1))
        assert t.value == t.intermediate_values[max(t.intermediate_values)]


def test_complete_trials_carry_their_best_epoch_value(asha_sweep):
    cfg, result = asha_sweep
    frame = result.trials
    complete = [t for t in result.study.trials if t.state == TrialState.COMPLETE]
    assert complete
    best_per_trial = frame.groupby("trial_id")["val_loss"].min()
    assert sorted(t.value for t in complete) == pytest.approx(
        sorted(best_per_trial[frame.groupby("trial_id")["status"].last() == "completed"])
    )


def test_best_trial_is_the_best_row_with_fold_scores(asha_sweep):
    cfg, result = asha_sweep
    best = json.loads((result.run_dir / "best_trial.json").read_text())
    frame = result.trials
    assert best["cv_mean"] == pytest.approx(frame["val_loss"].min())
    assert set(best["params"]) == SPACE_KEYS
    assert len(best["fold_scores"]) == 3 and len(best["fold_best_epochs"]) == 3
    assert np.mean(best["fold_scores"]) == pytest.approx(best["cv_mean"])
    row = frame[(frame.trial_id == best["trial_id"]) & (frame.epoch == best["epoch"])]
    assert len(row) == 1


def _param_sequence(result):
    frame = result.trials.drop_duplicates("trial_id").sort_values("trial_index")
    return [
        tuple(round(float(v), 12) if isinstance(v, float) else v for v in row)
        for row in frame[sorted(SPACE_KEYS)].itertuples(index=False)
    ]


def test_same_seed_on_one_worker_repeats_the_sweep(ray_local, small_cfg):
    first = run_sweep(small_cfg("budget.max_concurrent_trials=1", "seed=7"), stream=None)
    second = run_sweep(small_cfg("budget.max_concurrent_trials=1", "seed=7"), stream=None)
    other = run_sweep(small_cfg("budget.max_concurrent_trials=1", "seed=8"), stream=None)
    assert _param_sequence(first) == _param_sequence(second)
    assert _param_sequence(first) != _param_sequence(other)
    assert first.best["cv_mean"] == pytest.approx(second.best["cv_mean"], rel=1e-6)


def test_a_users_lightning_module_is_swept_by_target(ray_local, user_model_cfg):
    cfg = user_model_cfg(
        "user_models.TinyLinear",
        {"model.width": "choice(4, 16)", "optim.lr": "tag(log, interval(1e-2, 3e-1))"},
        "budget.num_samples=4",
        width=8,
    )
    result = run_sweep(cfg, stream=None)
    assert result.counts["failed"] == 0
    assert set(result.best["params"]) == {"model.width", "optim.lr"}
    assert result.best["params"]["model.width"] in (4, 16)
    assert result.best["metrics"]["val_accuracy"] > 0.5


def test_failing_trials_are_recorded_and_the_sweep_goes_on(ray_local, user_model_cfg):
    cfg = user_model_cfg(
        "user_models.DivergingLinear",
        {"optim.lr": "choice(0.05, 5.0)"},
        "budget.num_samples=6",
        "searcher=random",
        "scheduler=fifo",
        "budget.max_failure_rate=0.9",
        "budget.max_retries=0",  # a diverging trial fails the same way again
    )
    result = run_sweep(cfg, stream=None)
    frame = result.trials
    failed = frame[frame.status == "failed"]
    assert result.counts["failed"] >= 1 and result.counts["completed"] >= 1
    assert (failed["optim.lr"] == 5.0).all()
    assert failed["error"].str.contains("diverged").all()
    assert result.best["params"]["optim.lr"] == 0.05
