"""The Lightning engine without Ray: k real Trainers in lockstep (hpo.train.lightning_folds)."""

from __future__ import annotations

import math

import lightning as L
import pytest
from omegaconf import OmegaConf

from hpo.cli import main
from hpo.config import compose_config
from hpo.data.datamodule import build_datamodule, fold_loaders, module_data
from hpo.errors import TrialError
from hpo.space import build_search_space
from hpo.train.lightning_folds import LightningFolds
from hpo.train.lightning_plan import plan_lightning

BASE = [
    "model=lightning",
    "data=lightning",
    "data._target_=lightning_models.NoTestDigits",
    "model.lr=tag(log, interval(1e-3, 1e-1))",
    "metric=val_acc",
    "mode=max",
    "cv.folds=3",
    "trainer.max_epochs=3",
]


def setup_folds(tmp_path, model="lightning_models.LitDigits", *overrides, **fixed):
    cfg, _ = compose_config([*BASE, f"model._target_={model}", *overrides])
    plan = plan_lightning(cfg, build_search_space(cfg.search_space)[0])
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["model"].update(lr=0.05, **fixed)
    return plain, module_data(build_datamodule(plain["data"])), plan


class Metrics(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def test_a_fold_trained_in_lockstep_equals_the_same_fold_trained_alone(tmp_path):
    plain, data, plan = setup_folds(tmp_path, dropout=0.3)  # dropout: the RNG streams matter
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        while not folds.finished:
            folds.run_epoch()
    finally:
        folds.close()
    for fold in (0, 2):
        L.seed_everything(int(plain["seed"]) + fold, workers=True, verbose=False)
        from hpo.models.build import build_lightning_module

        module = build_lightning_module(plain["model"])
        train, val = fold_loaders(data, plan, fold, int(plain["seed"]) + fold)
        seen = Metrics()
        trainer = L.Trainer(
            max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            num_sanity_val_steps=0, callbacks=[seen], accelerator="cpu", devices=1,
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        lockstep = folds.histories()[fold]
        assert [r["val_acc"] for r in lockstep] == [r["val_acc"] for r in seen.rows]
        assert [r["train_loss"] for r in lockstep] == [r["train_loss"] for r in seen.rows]


def test_a_restored_trial_continues_exactly_where_its_checkpoint_was(tmp_path):
    plain, data, plan = setup_folds(tmp_path, dropout=0.3)
    folds = LightningFolds(plain, data, plan, tmp_path / "a")
    saved = tmp_path / "ckpt"
    saved.mkdir()
    try:
        folds.run_epoch()
        folds.save(saved)
        uninterrupted = folds.run_epoch()
    finally:
        folds.close()
    restored = LightningFolds(plain, data, plan, tmp_path / "b", restore_dir=saved)
    try:
        assert restored.epoch == 1
        # the divergence rule's reference (the first epoch's val_loss) survives the restore
        assert [r.first_loss for r in restored.records] == [r.first_loss for r in folds.records]
        assert all(r.first_loss == r.history[0]["val_loss"] for r in restored.records)
        again = restored.run_epoch()
    finally:
        restored.close()
    assert again.epoch == 2
    assert again.fold_metrics["val_acc"] == uninterrupted.fold_metrics["val_acc"]


def test_each_fold_early_stops_on_the_sweeps_metric_and_reports_its_best_epoch(tmp_path):
    # ReduceLROnPlateau with `monitor` runs as under plain Lightning; min_delta=1 makes every
    # epoch after the first "no better", so each fold stops after `patience` epochs.
    plain, data, plan = setup_folds(
        tmp_path, "lightning_models.PlateauDigits", "trainer.patience=1", "trainer.min_delta=1.0",
        "trainer.max_epochs=6",
    )  # fmt: skip
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        reports = []
        while not folds.finished:
            reports.append(folds.run_epoch())
    finally:
        folds.close()
    assert len(reports) == 2  # epoch 1 best, epoch 2 not better by 1.0: stopped
    last = reports[-1]
    assert last.folds_active == 0 and last.fold_best_epochs == [1, 1, 1]
    first = [h[0]["val_acc"] for h in folds.histories()]
    assert last.fold_metrics["val_acc"] == first  # stopped folds report their best epoch
    assert all(run is None for run in folds.runs)  # every fit thread has ended


def test_a_loss_that_explodes_past_its_first_epoch_fails_the_trial_as_diverged(tmp_path):
    """The tabular engine's rule (hpo.train.divergence) on a real Trainer: at lr=300
    LitDigits' OneCycleLR warms up through epoch 1 (val_loss in the hundreds to millions),
    then the peak lr blows the weights up (1e13 and more, still finite)."""
    from hpo.errors import TrialError

    plain, data, plan = setup_folds(tmp_path)
    plain["model"]["lr"] = 300.0
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        first = folds.run_epoch()
        assert all(0 < v < 1e9 for v in first.fold_metrics["val_loss"])  # finite, reference
        with pytest.raises(TrialError) as diverged:
            folds.run_epoch()
    finally:
        folds.close()
    message = str(diverged.value)
    assert "at epoch 2" in message and "the model diverged" in message
    assert "trainer.divergence_factor=10 times its first epoch's val_loss" in message
    assert all(run is None for run in folds.runs)  # every fold's fit ended


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model._target_=lightning_models.LitDigits", "metric=val_f1"], ["val_f1", "val_acc, val_loss"]),
        (["model._target_=lightning_models.BrokenDigits"], ["model._target_", "one batch"]),
        (["model._target_=lightning_models.TwoInputDigits", "metric=[val_acc,latency_ms]",
          "mode=[max,min]", "searcher=nsga2"],
         ["config key `metric`", "latency_ms cannot be measured", "TwoInputDigits(x)", "scale"]),
        (["model._target_=lightning_models.LitDigits", "metric=[param_count,val_acc]",
          "mode=[min,max]", "searcher=nsga2"], ["config key `metric`", "first objective"]),
        (["model._target_=lightning_models.LitDigits", "data._target_=lightning_models.StreamingDigits"],
         ["no length", "hpo_dataset"]),
        (["model._target_=lightning_models.LitDigits", "data._target_=lightning_models.UnlabelledDigits",
          "cv.strategy=stratified"], ["cv.strategy", "labels"]),
    ],
)  # fmt: skip
def test_bad_lightning_input_fails_in_one_line_before_ray_and_writes_nothing(
    tmp_path, capsys, overrides, expected
):
    run_dir = tmp_path / "run"
    code = main(["sweep", *BASE, *overrides, f"run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("hpo: error:")
    for text in expected:
        assert text in line
    assert not run_dir.exists()


LATENCY_OBJECTIVE = [{"metric": "val_acc", "mode": "max"}, {"metric": "latency_ms", "mode": "min"}]


def test_every_report_carries_the_modules_size_and_latency_once_measured(tmp_path):
    plain, data, plan = setup_folds(tmp_path, "lightning_models.LitDigits", hidden=16)
    plain["objectives"] = LATENCY_OBJECTIVE
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        reports = [folds.run_epoch() for _ in range(2)]
    finally:
        folds.close()
    assert [r.metrics["param_count"] for r in reports] == [64 * 16 + 16 + 16 * 10 + 10] * 2
    assert reports[0].metrics["latency_ms"] == reports[1].metrics["latency_ms"] > 0
    assert "latency_ms" not in reports[0].fold_metrics  # one value per trial, not per fold


def test_latency_is_timed_only_when_it_is_an_objective(tmp_path):
    plain, data, plan = setup_folds(tmp_path, "lightning_models.LitDigits", hidden=16)
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        report = folds.run_epoch()
    finally:
        folds.close()
    assert math.isnan(report.metrics["latency_ms"])  # no forward passes spent on it
    assert report.metrics["param_count"] == 64 * 16 + 16 + 16 * 10 + 10


def test_a_forward_that_cannot_take_the_batch_fails_a_latency_objective(tmp_path):
    plain, data, plan = setup_folds(tmp_path, "lightning_models.TwoInputDigits")
    plain["objectives"] = LATENCY_OBJECTIVE
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        with pytest.raises(TrialError, match="latency_ms is an objective.*TwoInputDigits"):
            folds.run_epoch()
    finally:
        folds.close()


def test_trainer_keys_reach_every_folds_real_trainer(tmp_path):
    logs = tmp_path / "csv_logs"
    plain, data, plan = setup_folds(
        tmp_path, "lightning_models.LitDigits", "trainer.accumulate_grad_batches=2",
        f"trainer.logger={{_target_: lightning.pytorch.loggers.CSVLogger, save_dir: '{logs}'}}",
        "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=0.5",
        "trainer.limit_train_batches=3", "trainer.max_epochs=1",
    )  # fmt: skip
    folds = LightningFolds(plain, data, plan, tmp_path)
    try:
        for run in folds.runs:  # each fold's Trainer, built with the config's Lightning keys
            assert run.trainer.accumulate_grad_batches == 2
            assert run.trainer.precision == "bf16-mixed"
            assert run.trainer.gradient_clip_val == 0.5
            assert run.trainer.limit_train_batches == 3
        report = folds.run_epoch()  # and it trains with them
    finally:
        folds.close()
    assert report.finished and report.epoch == 1 and report.folds_active == 0
    # the user's logger from config, one per fold, wrote what the module logged
    written = sorted(logs.glob("lightning_logs/version_*/metrics.csv"))
    assert len(written) == 3 and all("val_acc" in p.read_text() for p in written)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_folds_train_on_the_gpu_and_in_parallel_on_several(tmp_path):
    import torch

    gpus = min(2, torch.cuda.device_count())
    plain, data, plan = setup_folds(
        tmp_path, "lightning_models.LitDigits", "trainer.precision=16-mixed"
    )
    plain["objectives"] = LATENCY_OBJECTIVE
    folds = LightningFolds(plain, data, plan, tmp_path, gpus=float(gpus))
    try:
        assert folds.device == "cuda" and folds.slots == (gpus if gpus >= 2 else 1)
        devices = {str(run.trainer.strategy.root_device) for run in folds.runs}
        assert len(devices) == gpus
        while not folds.finished:
            report = folds.run_epoch()
    finally:
        folds.close()
    assert report.metrics["val_acc"] > 0.5
    assert report.metrics["latency_ms"] > 0  # timed on the GPU, synchronized
