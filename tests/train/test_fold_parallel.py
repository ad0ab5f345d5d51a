"""Fold-parallel training gives what training the folds one by one gives.

The reference is the sequential engine: each fold's own TabularMLP / user module trained
alone. The folds here have different row counts (wine: 94, 95, 95 train rows), so their
last batches differ and, with batch_size=31, fold 0 skips a one-row last batch that the
others train on (its AdamW step count falls behind); patience=2 makes folds stop at
different epochs, so stopped folds are masked out while the others go on.
"""

from __future__ import annotations

import io
import logging

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.nn import functional as F

from hpo.data import prepare_data
from hpo.models.mlp import TabularMLP
from hpo.train import FoldTrainer
from hpo.train.loop import choose_engine

RAGGED = [
    "data=wine",
    "trainer.batch_size=31",
    "trainer.max_epochs=12",
    "trainer.patience=2",
    "optim.lr=0.02",
    "trainer.gradient_clip_val=0.5",
    "optim.label_smoothing=0.1",
    "model.dropout=0.3",
    "model.hidden_dim=32",
]


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=True)


def _train(cfg, engine, model=None, epochs=None):
    plain = _plain(cfg)
    trainer = FoldTrainer(
        prepare_data(cfg).trial_data,
        model or plain["model"],
        plain["optim"],
        plain["trainer"],
        seed=int(cfg.seed),
        engine=engine,
    )
    while not trainer.finished and (epochs is None or trainer.epoch < epochs):
        trainer.run_epoch()
    return trainer


def _assert_same_folds(reference, candidate, rtol, atol):
    assert candidate.epoch == reference.epoch
    assert [f.best_epoch for f in candidate.folds] == [f.best_epoch for f in reference.folds]
    assert [f.stopped for f in candidate.folds] == [f.stopped for f in reference.folds]
    for ref_history, history in zip(reference.fold_histories(), candidate.fold_histories()):
        assert [row["epoch"] for row in history] == [row["epoch"] for row in ref_history]
        for ref_row, row in zip(ref_history, history):
            assert row == pytest.approx(ref_row, rel=rtol, abs=atol)
    for best in (True, False):
        pairs = zip(reference.fold_modules(best), candidate.fold_modules(best))
        for ref_module, module in pairs:
            assert type(module) is type(ref_module)
            ref_state, state = ref_module.state_dict(), module.state_dict()
            assert list(state) == list(ref_state)
            for name in ref_state:
                torch.testing.assert_close(state[name], ref_state[name], rtol=rtol, atol=atol)


def test_batched_folds_match_sequential_folds_early_stopping_included(small_cfg):
    cfg = small_cfg(*RAGGED)
    sizes = [f.X_train.shape[0] for f in prepare_data(cfg).trial_data.folds]
    assert len(set(sizes)) > 1 and any(n % 31 == 1 for n in sizes)  # ragged, as intended
    sequential = _train(cfg, "sequential")
    batched = _train(cfg, "auto")
    assert (sequential.engine_name, batched.engine_name) == ("sequential", "batched")
    stops = [len(h) for h in sequential.fold_histories()]
    assert len(set(stops)) > 1, "the folds should stop at different epochs here"
    _assert_same_folds(sequential, batched, rtol=1e-4, atol=1e-5)


def test_batch_norm_and_dropout_stay_per_fold(small_cfg):
    cfg = small_cfg(*RAGGED, "model.batch_norm=true", "trainer.patience=3")
    sequential = _train(cfg, "sequential", epochs=4)
    batched = _train(cfg, "batched", epochs=4)
    # Batch-norm statistics are sums over a batch, so rounding differs more than in the
    # matrix products; the tolerance is looser, still far below a wrong-rows error.
    _assert_same_folds(sequential, batched, rtol=2e-3, atol=2e-4)
    means = [m.net[1].running_mean for m in batched.fold_modules(best=False)]
    assert not torch.allclose(means[0], means[1])  # each fold its own statistics


def test_user_module_trains_folds_under_vmap_like_sequential(user_model_cfg):
    cfg = user_model_cfg(
        "user_models.TinyLinear",
        {"optim.lr": "choice(0.05)"},
        *RAGGED[:2],
        "trainer.max_epochs=6",
        "optim.lr=0.05",
        "trainer.gradient_clip_val=0.5",
        width=16,
    )
    sequential = _train(cfg, "sequential")
    vmapped = _train(cfg, "auto")
    assert vmapped.engine_name == "vmap"
    _assert_same_folds(sequential, vmapped, rtol=1e-4, atol=1e-5)


class NoisyLinear(L.LightningModule):
    """Dropout in training_step: each fold's stream cannot be kept apart under vmap."""

    def __init__(self, input_dim, output_dim, task, optim, **_):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(input_dim, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, output_dim)
        )

    def forward(self, x):
        return self.body(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class NormedLinear(NoisyLinear):
    """Batch norm updates running statistics (buffers) in training_step."""

    def __init__(self, input_dim, output_dim, task, optim, **_):
        super().__init__(input_dim, output_dim, task, optim)
        self.body = torch.nn.Sequential(
            torch.nn.Linear(input_dim, 8),
            torch.nn.BatchNorm1d(8),
            torch.nn.Linear(8, output_dim),
        )


@pytest.mark.parametrize(
    ("module_class", "why"), [(NoisyLinear, "random"), (NormedLinear, "buffer")]
)
def test_modules_that_vmap_cannot_keep_per_fold_train_sequentially(
    small_cfg, caplog, module_class, why
):
    trainer = _train(small_cfg(), "sequential", epochs=0)
    modules = [module_class(4, 3, "classification", {}) for _ in range(3)]
    with caplog.at_level(logging.INFO, logger="hpo.train.loop"):
        assert choose_engine(modules, trainer.folds) == "sequential"
        choose_engine(modules, trainer.folds)
    notes = [r.getMessage() for r in caplog.records if module_class.__name__ in r.getMessage()]
    assert len(notes) == 1 and why in notes[0]  # logged once, with the reason


def test_checkpoints_are_engine_independent(small_cfg):
    cfg = small_cfg(*RAGGED[:5])
    straight = _train(cfg, "sequential", epochs=5)

    first = _train(cfg, "sequential", epochs=2)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = _train(cfg, "batched", epochs=0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    while resumed.epoch < 5:
        resumed.run_epoch()
    _assert_same_folds(straight, resumed, rtol=1e-4, atol=1e-5)


def test_batched_fold_modules_are_standalone_tabular_mlps(small_cfg):
    trainer = _train(small_cfg("trainer.max_epochs=3", "model.batch_norm=true"), "auto")
    assert trainer.engine_name == "batched"
    modules = trainer.fold_modules(best=False)
    assert all(type(m) is TabularMLP and not m.training for m in modules)
    engine = trainer.engine
    with torch.no_grad():
        engine.model.eval()
        together = engine.model(engine.X_val)
        for index, module in enumerate(modules):
            alone = module(trainer.folds[index].X_val)
            n = alone.shape[0]
            torch.testing.assert_close(alone, together[index, :n], rtol=1e-5, atol=1e-6)
        for parameter in modules[0].parameters():
            parameter.add_(1.0)  # a copy: the trainer's weights do not move
    torch.testing.assert_close(engine.model(engine.X_val), together)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_folds_train_batched_on_the_gpu_with_data_resident(small_cfg):
    cfg = small_cfg("data=digits", "trainer.max_epochs=3", "model.dropout=0")
    plain = _plain(cfg)
    data = prepare_data(cfg).trial_data
    runs = {}
    for device in ("cpu", "cuda"):
        trainer = FoldTrainer(
            data, plain["model"], plain["optim"], plain["trainer"], seed=0, device=device
        )
        assert trainer.engine_name == "batched"
        engine = trainer.engine
        assert engine.X_train.device.type == device and engine.model.flat.device.type == device
        if device == "cuda":
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                trainer.run_epoch()
            copies = sum(e.count for e in prof.key_averages() if "HtoD" in e.key)
            steps = -(-max(f.X_train.shape[0] for f in trainer.folds) // 64)
            assert copies < steps  # a few per epoch, none per batch
        while not trainer.finished:
            trainer.run_epoch()
        runs[device] = trainer
    for cpu, gpu in zip(runs["cpu"].fold_histories(), runs["cuda"].fold_histories()):
        for a, b in zip(cpu, gpu):
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)
