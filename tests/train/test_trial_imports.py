"""What a Ray worker imports to run a tabular trial: scikit-learn (the driver's data
preparation, quality checks and splitters), Lightning, torchmetrics, Hydra and Optuna stay
off that path (about 8 s of a worker's start on 2 cores), and the fold arrays unpickle from
a module that needs numpy only."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from hpo.data.arrays import FoldArrays, TrialData

HEAVY = ("sklearn", "lightning", "torchmetrics", "hydra", "optuna", "transformers", "scipy")

# A worker's first trial as far as hpo's code goes: import the trial module, unpickle what
# Ray's object store hands it, build the k fold-models of the default MLP, train two
# epochs (early stopping, the task's metrics) and take the checkpoint's state.
PROBE = """
import json, pickle, sys
import hpo.train.trial
from hpo.train.trial import FoldTrainer, apply_params
data, cfg = pickle.loads(sys.stdin.buffer.read())
cfg = apply_params(cfg, {"optim.lr": 0.01})
trainer = FoldTrainer(data, cfg["model"], cfg["optim"], cfg["trainer"], seed=0)
for _ in range(2):
    summary = trainer.run_epoch()
trainer.state_dict()
heavy = sys.argv[1].split(",")
print(json.dumps({
    "arrays": type(data).__module__,
    "engine": trainer.engine_name,
    "metrics": sorted(summary.metrics),
    "imported": [name for name in heavy if name in sys.modules],
}))
"""


def plain_config(task: str) -> dict:
    from omegaconf import OmegaConf

    from hpo.config import compose_config

    cfg, _ = compose_config([f"data={'iris' if task == 'classification' else 'diabetes'}"])
    return OmegaConf.to_container(cfg, resolve=True)


def two_fold_classification(seed: int) -> tuple[np.ndarray, TrialData]:
    """30 random rows of 4 features, 3 classes; both folds train on the first 20 rows and
    validate on the last 10."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    folds = [FoldArrays(X[:20], y[:20], X[20:], y[20:], np.arange(20), np.arange(10))] * 2
    return X, TrialData(folds, 4, 3, "classification", [0, 1, 2])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_tabular_trial_runs_without_the_drivers_heavy_libraries(task):
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(3):
        X = rng.normal(size=(40, 4)).astype(np.float32)
        y = rng.integers(0, 3, 40) if task == "classification" else rng.normal(size=40)
        folds.append(FoldArrays(X[:30], y[:30], X[30:], y[30:], np.arange(30), np.arange(10)))
    data = TrialData(folds, 4, 3 if task == "classification" else 1, task, [0, 1, 2])
    payload = pickle.dumps((data, plain_config(task)))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(HEAVY)],
        input=payload,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    probe = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert probe["arrays"] == "hpo.data.arrays"
    assert probe["engine"] == "batched"
    wanted = (
        {"val_accuracy", "val_f1_macro"} if task == "classification" else {"val_rmse", "val_r2"}
    )
    assert wanted <= set(probe["metrics"])
    assert probe["imported"] == []


def test_the_fold_arrays_are_still_named_by_hpo_data_prepare():
    from hpo.data import prepare

    assert prepare.TrialData is TrialData and prepare.FoldArrays is FoldArrays


def test_the_trial_trains_mlpnet_and_hands_out_lightning_modules():
    """The trial's Lightning-free MLPNet and the user-facing TabularMLP are one model: the
    same initial weights under the same seed, and fold_modules() gives TabularMLPs with the
    trained weights."""
    import lightning as L

    from hpo.models.build import build_module
    from hpo.models.mlp import TabularMLP
    from hpo.models.mlp_net import MLPNet
    from hpo.train import FoldTrainer

    cfg = plain_config("classification")
    arch = {k: v for k, v in cfg["model"].items() if k != "_target_"}
    torch.manual_seed(5)
    lean = build_module(cfg["model"], 4, 3, "classification", cfg["optim"])
    torch.manual_seed(5)
    lit = TabularMLP(4, 3, "classification", cfg["optim"], **arch)
    assert type(lean) is MLPNet and isinstance(lit, L.LightningModule)
    assert lean.state_dict().keys() == lit.state_dict().keys()
    assert all(
        torch.equal(a, b) for a, b in zip(lean.state_dict().values(), lit.state_dict().values())
    )

    X, data = two_fold_classification(seed=1)
    for engine in ("batched", "sequential"):
        trainer = FoldTrainer(data, cfg["model"], cfg["optim"], cfg["trainer"], 0, engine=engine)
        trainer.run_epoch()
        modules = trainer.fold_modules(best=False)
        assert all(type(m) is TabularMLP and not m.training for m in modules)
        x = torch.as_tensor(X[20:])
        with torch.no_grad():
            expected = trainer.engine.fold_module(0, False)(x)
            assert torch.allclose(modules[0](x), expected)


def test_the_tabular_sweep_and_export_leave_lightning_unimported():
    """The tabular driver (the runner, `hpo sweep`'s command, the export pipeline) does
    not import Lightning (its import, with torchmetrics', takes ~5 s here); the export
    trains and writes the plain MLPNet, the same layers and weights as TabularMLP."""
    code = (
        "import sys, hpo.sweep.runner, hpo.commands.sweep, hpo.export.pipeline\n"
        "print(sorted(m for m in ('lightning', 'torchmetrics') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    from hpo.models.mlp_net import MLPNet
    from hpo.train import FoldTrainer

    cfg = plain_config("classification")
    X, data = two_fold_classification(seed=2)
    trainer = FoldTrainer(data, cfg["model"], cfg["optim"], cfg["trainer"], 0)
    trainer.run_epoch()
    plain = trainer.fold_modules(best=False, lightning=False)
    lit = trainer.fold_modules(best=False)
    assert all(type(m) is MLPNet and not m.training for m in plain)
    x = torch.as_tensor(X[20:])
    with torch.no_grad():
        assert all(torch.allclose(p(x), m(x)) for p, m in zip(plain, lit))
