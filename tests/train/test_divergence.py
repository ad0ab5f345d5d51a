"""A loss that explodes but stays finite fails the trial as diverged (hpo.train.divergence):
real training on iris, no Ray."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from hpo.data import prepare_data
from hpo.errors import TrialError
from hpo.train import FoldTrainer
from hpo.train.divergence import reference_loss


def trainer_for(cfg) -> FoldTrainer:
    plain = OmegaConf.to_container(cfg, resolve=True)
    data = prepare_data(cfg).trial_data
    return FoldTrainer(data, plain["model"], plain["optim"], plain["trainer"], seed=int(cfg.seed))


def test_the_reference_is_the_loss_of_ignoring_the_inputs():
    y = torch.tensor([0, 0, 0, 1])
    # the training prior (3+1):(1+1) scores -log(4/6) and -log(2/6) on the rows; ln 2 floors it
    expected = -(math.log(4 / 6) * 3 + math.log(2 / 6)) / 4
    assert reference_loss(y, y, "classification", 2) == pytest.approx(max(expected, math.log(2)))
    assert reference_loss(y, torch.tensor([1, 1]), "classification", 2) == pytest.approx(
        -math.log(2 / 6)
    )
    assert reference_loss(torch.zeros(3), torch.tensor([3.0, -3.0]), "regression", 1) == 9.0


def test_an_exploding_but_finite_loss_fails_as_diverged(small_cfg):
    trainer = trainer_for(small_cfg("optim.lr=1000", "trainer.max_epochs=10"))
    with pytest.raises(TrialError) as diverged:
        while not trainer.finished:
            summary = trainer.run_epoch()
            assert all(math.isfinite(v) for v in summary.fold_metrics["val_loss"])
    assert "trainer.divergence_factor=10" in str(diverged.value)
    assert "the model diverged" in str(diverged.value)


def test_healthy_training_and_a_disabled_rule_do_not_trip_it(small_cfg):
    healthy = trainer_for(small_cfg("optim.lr=0.01", "trainer.max_epochs=6"))
    while not healthy.finished:
        healthy.run_epoch()
    off = trainer_for(
        small_cfg("optim.lr=1000", "trainer.max_epochs=3", "trainer.divergence_factor=null")
    )
    while not off.finished:
        summary = off.run_epoch()
    assert max(summary.fold_metrics["val_loss"]) > 10 * math.log(3)  # past the rule, left alone
