"""One trial's fold loop, without Ray: training, early stopping, checkpoints, divergence."""

from __future__ import annotations

import io

import pytest
import torch
from omegaconf import OmegaConf

from hpo.data import prepare_data
from hpo.errors import TrialError
from hpo.train import FoldTrainer


def _trainer(cfg, **model_overrides):
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["model"].update(model_overrides)
    data = prepare_data(cfg).trial_data
    return FoldTrainer(data, plain["model"], plain["optim"], plain["trainer"], seed=int(cfg.seed))


def test_folds_learn_and_report_fold_means(small_cfg):
    trainer = _trainer(small_cfg("trainer.max_epochs=8", "optim.lr=0.01"))
    first = trainer.run_epoch()
    for _ in range(7):
        last = trainer.run_epoch()
    assert last.metrics["val_loss"] < first.metrics["val_loss"]
    assert last.metrics["val_accuracy"] > 0.8  # iris is easy
    assert len(last.fold_metrics["val_loss"]) == 3
    assert last.metrics["val_loss"] == pytest.approx(sum(last.fold_metrics["val_loss"]) / 3)
    assert last.finished and last.epoch == 8


def test_each_fold_stops_early_on_its_own(small_cfg):
    # lr=0 never improves after the first epoch, so every fold stops after `patience` more.
    trainer = _trainer(small_cfg("trainer.max_epochs=20", "trainer.patience=2", "optim.lr=1e-12"))
    epochs = 0
    while not trainer.finished:
        summary = trainer.run_epoch()
        epochs += 1
    assert epochs == 3 and summary.folds_active == 0
    assert summary.fold_best_epochs == [1, 1, 1]


def test_checkpoint_resume_continues_exactly(small_cfg):
    cfg = small_cfg("trainer.max_epochs=6", "optim.lr=0.01")
    straight = _trainer(cfg)
    for _ in range(4):
        expected = straight.run_epoch()

    first = _trainer(cfg)
    first.run_epoch()
    first.run_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = _trainer(cfg)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.run_epoch()
    got = resumed.run_epoch()
    assert got.epoch == 4
    assert got.fold_metrics["val_loss"] == pytest.approx(
        expected.fold_metrics["val_loss"], rel=1e-6
    )


def test_diverging_model_raises_trial_error(user_model_cfg):
    cfg = user_model_cfg("user_models.DivergingLinear", {"optim.lr": "choice(5.0)"}, "optim.lr=5")
    trainer = _trainer(cfg)
    with pytest.raises(TrialError, match="diverged"):
        trainer.run_epoch()


def test_fold_modules_carry_the_best_epochs_weights(small_cfg):
    trainer = _trainer(small_cfg("trainer.max_epochs=5", "optim.lr=0.05"))
    while not trainer.finished:
        trainer.run_epoch()
    histories = trainer.fold_histories()
    assert [len(h) for h in histories] == [5, 5, 5]
    for fold, module in zip(trainer.folds, trainer.fold_modules(best=True)):
        with torch.no_grad():
            loss = float(module.validation_step((fold.X_val, fold.y_val), 0)["loss"])
        assert loss == pytest.approx(fold.best_loss, rel=1e-5)
