"""The Ray Tune entry point of a trial, run by a real local Ray Tune."""

from __future__ import annotations

import os

import pytest
import torch
from omegaconf import OmegaConf
from ray import tune

from hpo.data import prepare_data
from hpo.train.trial import CHECKPOINT_FILE, FINISHED_KEY, run_trial

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("interval_s", "expected"),
    [(0, [2, 4, 5]), (3600, [5])],  # every 2nd epoch; or at most one an hour: the end only
)
def test_trial_checkpoints_every_n_epochs_and_at_its_end(
    small_cfg, ray_local, tmp_path, interval_s, expected
):
    cfg = small_cfg(
        "trainer.max_epochs=5",
        "trainer.checkpoint_every=2",
        "trainer.patience=10",
        f"trainer.checkpoint_interval_s={interval_s}",
    )
    trainable = tune.with_parameters(
        run_trial,
        trial_data=prepare_data(cfg).trial_data,
        base_cfg=OmegaConf.to_container(cfg, resolve=True),
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"optim.lr": 0.01},
        run_config=tune.RunConfig(
            name="trial",
            storage_path=str(tmp_path),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # keep all, to count
        ),
    )
    result = tuner.fit()[0]
    assert result.error is None
    assert result.metrics["epoch"] == 5 and result.metrics[FINISHED_KEY]
    saved_at = sorted(metrics["epoch"] for _, metrics in result.best_checkpoints)
    assert saved_at == expected
    with result.checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, CHECKPOINT_FILE), weights_only=True)
    assert state["epoch"] == 5 and state["engine"] == "batched"
    # The best epoch's weights are stored once: as the current ones when they are.
    for fold in state["folds"]:
        assert (fold["best_state"] is None) == fold["best_is_current"]
