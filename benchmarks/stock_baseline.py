"""The stock approach that benchmarks/throughput.py measures hpo against: each fold
trained on its own by a Lightning Trainer from a DataLoader, one after another, under
Ray Tune's defaults (a new actor for every trial, every checkpoint kept).

Lightning is imported at module level on purpose: a Ray worker imports it when it
unpickles the stock trainable, before the trial's clock starts, just as it imports hpo
for ours; neither approach's trial time then includes its imports.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from ray import tune
from torch.utils.data import DataLoader, TensorDataset

from hpo.models.mlp import TabularMLP


class LoggedTabularMLP(TabularMLP):
    """TabularMLP as a stock Lightning user writes it: logging through self.log."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["loss"], prog_bar=True)
        return out


class EpochClock(Callback):
    """Notes the clock at the start of every training epoch."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self.marks.append(self.clock())


def stock_fit_fold(fold, data, plain, lr: float, epochs: int, skip=1, clock=time.process_time):
    """One fold the stock way: a Lightning Trainer, a DataLoader, early stopping.
    Returns (validation loss, state dict, setup seconds, per-epoch seconds after the
    first ``skip`` epochs)."""
    epoch_clock = EpochClock(clock)
    start = clock()
    keys = {k: v for k, v in plain["model"].items() if k != "_target_"}
    optim = {**plain["optim"], "lr": lr}
    model = LoggedTabularMLP(data.input_dim, data.output_dim, data.task, optim, **keys)
    tensors = [torch.as_tensor(a) for a in (fold.X_train, fold.y_train, fold.X_val, fold.y_val)]
    batch = int(plain["trainer"]["batch_size"])
    train = DataLoader(TensorDataset(*tensors[:2]), batch_size=batch, shuffle=True)
    val = DataLoader(TensorDataset(*tensors[2:]), batch_size=1024)
    # Lightning's defaults, less its progress bar, logger and checkpoint files (which
    # would only add cost): a generous stock baseline.
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[EarlyStopping("val_loss", patience=1000), epoch_clock],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
    )
    trainer.fit(model, train, val)
    end, marks = clock(), epoch_clock.marks
    skip = min(skip, len(marks) - 1)
    steady = (end - marks[skip]) / (len(marks) - skip)
    setup = (end - start) - steady * len(marks)
    return float(trainer.callback_metrics["val_loss"]), model.state_dict(), setup, steady


def time_stock(data, plain: dict, epochs: int, warmup: bool) -> dict[str, float]:
    """A k-fold trial's steady epoch (the folds' epochs summed) and its setup, stock."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    setup = epoch = 0.0
    for fold in data.folds:
        _, _, fold_setup, fold_epoch = stock_fit_fold(
            fold, data, plain, 1e-3, epochs + warmup, skip=int(warmup)
        )
        setup += fold_setup
        epoch += fold_epoch
    return {"setup_s": setup, "epoch_s": epoch}


def stock_trial(config, trial_data, plain, epochs):
    """The stock Tune trainable: folds one after another, one report and checkpoint."""
    losses, states = [], {}
    for index, fold in enumerate(trial_data.folds):
        loss, state, _, _ = stock_fit_fold(fold, trial_data, plain, config["lr"], epochs)
        losses.append(loss)
        states[f"fold{index}"] = state
    with tempfile.TemporaryDirectory() as directory:
        torch.save(states, os.path.join(directory, "folds.pt"))
        checkpoint = tune.Checkpoint.from_directory(directory)
        tune.report({"val_loss": sum(losses) / len(losses)}, checkpoint=checkpoint)


def sweep_stock(data, plain: dict, trials: int, epochs: int, workdir: Path) -> dict:
    """A sweep of ``trials`` stock trials on a running Ray: its wall time and every
    trial's own time (Tune's ``time_total_s``)."""
    trainable = tune.with_parameters(stock_trial, trial_data=data, plain=plain, epochs=epochs)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"lr": tune.loguniform(1e-4, 3e-2)},
        tune_config=tune.TuneConfig(num_samples=trials, metric="val_loss", mode="min"),
        run_config=tune.RunConfig(name="stock", storage_path=str(workdir), verbose=0),
    )
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "trial_s": [float(r.metrics["time_total_s"]) for r in results]}
