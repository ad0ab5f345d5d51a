"""A real sweep of plain Lightning code: a LightningModule that logs with self.log and
torchmetrics and steps a OneCycleLR per batch, a DataModule, a user callback from config,
each fold a real lightning.Trainer, ASHA on the fold mean, then the export and predict."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hpo.cli import main

pytestmark = pytest.mark.slow

FOLDS = 3


def read_scalars(folder: Path) -> dict[tuple[str, int], float]:
    """Every scalar in a TensorBoard event folder, read back from the TFRecord files."""
    import struct

    from tensorboardX.proto import event_pb2

    found = {}
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                found[(value.tag, event.step)] = value.simple_value
    return found


def lightning_overrides(tmp_path: Path, *extra: str) -> list[str]:
    calls = tmp_path / "callback_calls.jsonl"
    return [
        "model=lightning",
        "model._target_=lightning_models.LitDigits",
        "data=lightning",
        "data._target_=lightning_models.DigitsDataModule",
        "model.lr=tag(log, interval(1e-3, 3e-1))",
        "model.hidden=choice(8, 32)",
        "data.batch_size=choice(64, 128)",
        "metric=val_acc",
        "mode=max",
        f"cv.folds={FOLDS}",
        "trainer.max_epochs=4",
        "trainer.patience=10",
        "budget.num_samples=6",
        "budget.max_concurrent_trials=2",
        "scheduler.grace_period=1",
        "scheduler.reduction_factor=2",
        "searcher=random",
        "cluster.num_cpus=2",
        f"trainer.callbacks=[{{_target_: lightning_models.RecordEpochs, path: '{calls}'}}]",
        f"run_dir={tmp_path / 'run'}",
        *extra,
    ]


def test_plain_lightning_code_sweeps_with_asha_on_the_fold_mean(tmp_path, capsys):
    code = main(["sweep", *lightning_overrides(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    run = tmp_path / "run"
    trials = pd.read_parquet(run / "trials.parquet")
    reported = trials[trials["epoch"] > 0]
    assert trials["trial_id"].nunique() == 6

    # The user's callback, built from config, ran in every fold of every trial, every epoch.
    calls = [
        json.loads(line) for line in (tmp_path / "callback_calls.jsonl").read_text().splitlines()
    ]
    # the export's refit runs the same callbacks (its Trainer root is under best.partial/)
    refit_calls = [c for c in calls if Path(c["root"]).parent.name == "best.partial"]
    assert refit_calls
    calls = [c for c in calls if Path(c["root"]).parent.name.startswith("trial_")]
    seen = defaultdict(dict)  # (trial, fold) -> {epoch: val_acc}
    for call in calls:
        trial_dir, fold = Path(call["root"]).parent.name, Path(call["root"]).name
        seen[(trial_dir.removeprefix("trial_"), fold)][call["epoch"]] = call["val_acc"]
    for trial_id, group in reported.groupby("trial_id"):
        for k in range(FOLDS):
            epochs = seen[(trial_id, f"fold_{k}")]
            assert sorted(epochs) == sorted(group["epoch"]), (trial_id, k)
    # OneCycleLR stepped per batch (interval: step): a trial that ran all 4 epochs ends its
    # cycle below max_lr / 100; stepped once per epoch it would still be warming up (~max_lr / 3).
    lr_of = {t: g["model.lr"].iloc[0] for t, g in trials.groupby("trial_id")}
    final = [c for c in calls if c["epoch"] == 4]
    assert final
    for call in final:
        trial_id = Path(call["root"]).parent.name.removeprefix("trial_")
        assert call["lr"] < lr_of[trial_id] / 100

    # Fold-mean rows are the mean of the folds' logged values, which are what each fold's
    # Trainer logged (seen by the user's callback at the same epoch).
    for row in reported.itertuples():
        folds = list(row.fold_val_acc)
        assert len(folds) == FOLDS
        assert row.val_acc == pytest.approx(np.mean(folds), abs=1e-9)
        assert row.val_acc_std == pytest.approx(np.std(folds), abs=1e-9)
        for k in range(FOLDS):
            assert folds[k] == pytest.approx(seen[(row.trial_id, f"fold_{k}")][row.epoch], abs=1e-6)
        assert {"train_loss", "train_acc", "val_loss"} <= set(trials.columns)

    # ASHA stopped trials on val_acc (mode max): each stopped trial was beaten at its last
    # rung by a trial that reached it; no epoch was trained twice.
    status = trials.groupby("trial_id")["status"].last()
    stopped = status[status == "stopped"].index
    assert len(stopped) >= 1 and (status == "failed").sum() == 0
    for trial_id in stopped:
        last = reported[reported["trial_id"] == trial_id].iloc[-1]
        assert last["epoch"] < 4
        rivals = reported[(reported["epoch"] == last["epoch"]) & (reported["trial_id"] != trial_id)]
        assert (rivals["val_acc"] > last["val_acc"]).any()
    assert not reported.duplicated(["trial_id", "epoch"]).any()

    # TensorBoard: every trial's fold means and per-fold values, as trials.parquet has them.
    for trial_id, group in reported.groupby("trial_id"):
        scalars = read_scalars(run / "tensorboard" / f"trial_{trial_id}")
        for row in group.itertuples():
            assert scalars[("val_acc/mean", row.epoch)] == pytest.approx(row.val_acc, rel=1e-6)
            assert scalars[("val_acc/fold_2", row.epoch)] == pytest.approx(
                row.fold_val_acc[2], rel=1e-6
            )
    assert list((run / "tensorboard").glob("trial_*/hparams/events.out.tfevents.*"))

    # The export: a refit module, a weights-only checkpoint, ONNX, the report, test metrics.
    best = run / "best"
    manifest = json.loads((best / "model.json").read_text())
    assert manifest["engine"] == "lightning" and manifest["classes"] == list(range(10))
    state = torch.load(best / "model.ckpt", weights_only=True)
    assert any(k.startswith("net.") for k in state["state_dict"])
    report = json.loads((best / "report.json").read_text())
    assert report["test"]["rows"] == 300  # the DataModule's own test_dataloader
    assert 0.5 < report["test"]["accuracy"] <= 1.0
    # the module's own test_step (torchmetrics' MulticlassAccuracy: macro average) agrees
    # with hpo's table on the same rows (macro accuracy = macro recall)
    assert report["lightning_test"]["test_acc"] == pytest.approx(
        report["test"]["recall_macro"], abs=1e-6
    )
    assert report["onnx"]["exported"] and report["onnx"]["passed"]
    assert len(report["fold_curves"]["val_acc"][0]) == FOLDS
    assert (best / "report.html").stat().st_size > 10_000
    assert "test (300 held-out rows, refit model)" in out

    # hpo predict runs the exported module over the DataModule's predict_dataloader.
    preds_path = tmp_path / "preds.csv"
    assert main(["predict", str(best), "--output", str(preds_path)]) == 0
    preds = pd.read_csv(preds_path)
    assert len(preds) == 300 and set(preds["prediction"]) <= set(range(10))
    exported = pd.read_parquet(best / "test_predictions.parquet")
    assert (preds["prediction"].to_numpy() == exported["prediction"].to_numpy()).all()
    # never overwrites
    assert main(["predict", str(best), "--output", str(preds_path)]) == 2
    # `hpo report` rebuilds the same report from the run directory alone
    (best / "report.json").unlink()
    assert main(["report", str(run)]) == 0
    assert json.loads((best / "report.json").read_text())["test"] == report["test"]
