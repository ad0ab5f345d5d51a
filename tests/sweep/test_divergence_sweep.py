"""An exploding learning rate in a real sweep (local Ray): the trial is recorded as
diverged and never exported as the best, even from its early, better epochs."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from hpo.config import validate_config
from hpo.sweep import run_sweep
from hpo.sweep.lock import release_run_dir

pytestmark = pytest.mark.slow


def test_a_trial_whose_loss_explodes_is_failed_and_not_the_best(ray_local, small_cfg):
    cfg = small_cfg(
        "searcher=grid",
        "scheduler=fifo",
        "trainer.max_epochs=4",
        "budget.max_retries=0",
        "budget.max_failure_rate=0.9",
    )
    cfg.search_space = {"optim.lr": "choice(0.01, 1000.0)"}
    result = run_sweep(validate_config(OmegaConf.to_container(cfg)), stream=None)
    release_run_dir(result.run_dir)
    per_trial = result.trials.groupby("trial_id").last()
    exploded = per_trial[per_trial["optim.lr"] == 1000.0].iloc[0]
    assert exploded.status == "failed"
    assert "trainer.divergence_factor=10" in exploded.error and "diverged" in exploded.error
    assert result.best["params"] == {"optim.lr": 0.01}
    assert result.best["trial_id"] != exploded.name
