"""How much the Lightning engine (a real lightning.Trainer per fold, in lockstep) costs over
plain ``Trainer.fit`` on the same module and data.

    python -m benchmarks.lightning_engine            # digits CNN + digits MLP, 3 rounds
    python -m benchmarks.lightning_engine --quick    # a smoke run

In one run, on the digits image example (examples/digits_cnn: a CNN over 1,797 PNG scans)
and on a small MLP over the same digits as tensors (tests/lightning_models.py: where fixed
costs weigh most), 5 folds, one torch thread (a trial with cpus_per_trial=1):

* ``fold_epoch_vs_plain`` (goal <= 1.05): one fold-epoch of a 5-fold trial on hpo's engine
  (the trial's epoch time / 5, steady state: epochs after the first) against one epoch of
  plain ``Trainer.fit`` of the same fold with the same loaders, timed by a callback;
* ``trial_vs_5_fits`` (goal <= 1.0 on one device): a whole 5-fold trial (Trainers built,
  every epoch, threads stopped) against 5 back-to-back plain ``Trainer.fit`` runs of the
  same folds, each building its Trainer.

The approaches run interleaved, once per round; the median round counts (a shared machine
is noisy). CPU time of this process (``time.process_time``: the fold threads are ours).
Results: benchmarks/results/lightning_engine.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/lightning_models.py
sys.path.insert(0, str(ROOT))  # examples/
from benchmarks.throughput import git_commit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "lightning_engine.json"
GOALS = {"fold_epoch_vs_plain": 1.05, "trial_vs_5_fits": 1.0}
FOLDS = 5


def compose(task: str, data_dir: Path, epochs: int):
    from hpo.config import compose_config

    if task == "digits_cnn":
        overrides = ["model._target_=examples.digits_cnn.model.LitDigitsCNN",
                     "data._target_=examples.digits_cnn.data.DigitsImageDataModule",
                     f"data.data_dir={data_dir}", "model.lr=0.01"]  # fmt: skip
    else:
        overrides = ["model._target_=lightning_models.LitDigits",
                     "data._target_=lightning_models.NoTestDigits"]  # fmt: skip
    cfg, _ = compose_config([
        "model=lightning", "data=lightning", *overrides, "metric=val_acc", "mode=max",
        f"cv.folds={FOLDS}", f"trainer.max_epochs={epochs}", "trainer.patience=100",
    ])  # fmt: skip
    return cfg


class EpochClock(L.Callback):
    """CPU time of every training epoch, start to end (validation included)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.process_time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.process_time() - self._start)


def time_plain(plain: dict, data, plan) -> dict[str, Any]:
    """5 back-to-back ``Trainer.fit`` runs, one per fold, with the engine's Trainer settings."""
    from hpo.data.datamodule import fold_loaders
    from hpo.models.build import build_lightning_module

    epochs, started = [], time.process_time()
    for fold in range(FOLDS):
        L.seed_everything(int(plain["seed"]) + fold, workers=True, verbose=False)
        module = build_lightning_module(plain["model"])
        train, val = fold_loaders(data, plan, fold, int(plain["seed"]) + fold)
        clock = EpochClock()
        trainer = L.Trainer(
            max_epochs=int(plain["trainer"]["max_epochs"]), accelerator="cpu", devices=1,
            logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, callbacks=[clock],
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        epochs.append(clock.times[1:])
    return {
        "total_s": time.process_time() - started,
        "fold_epoch_s": statistics.median(t for fold in epochs for t in fold),
    }


def time_engine(plain: dict, data, plan, root: Path) -> dict[str, Any]:
    from hpo.train.lightning_folds import LightningFolds

    started = time.process_time()
    folds = LightningFolds(plain, data, plan, root)
    epoch_times = []
    try:
        while not folds.finished:
            start = time.process_time()
            folds.run_epoch()
            epoch_times.append(time.process_time() - start)
    finally:
        folds.close()
    return {
        "total_s": time.process_time() - started,
        "fold_epoch_s": statistics.median(epoch_times[1:]) / FOLDS,
    }


def measure(task: str, epochs: int, rounds: int, workdir: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from hpo.data.datamodule import build_datamodule, module_data
    from hpo.space import build_search_space
    from hpo.train.lightning_plan import plan_lightning

    cfg = compose(task, workdir / "digits_images", epochs)
    plan = plan_lightning(cfg, build_search_space(cfg.search_space)[0])
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["model"]["dropout"] = 0.05
    data = module_data(build_datamodule(plain["data"]))
    raw = {"plain": [], "engine": []}
    for index in range(rounds):
        raw["plain"].append(time_plain(plain, data, plan))
        raw["engine"].append(time_engine(plain, data, plan, workdir / f"{task}_{index}"))
    med = {
        a: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for a, rows in raw.items()
    }
    return {
        "figures": {
            "fold_epoch_vs_plain": med["engine"]["fold_epoch_s"] / med["plain"]["fold_epoch_s"],
            "trial_vs_5_fits": med["engine"]["total_s"] / med["plain"]["total_s"],
        },
        "median": med,
        "raw": raw,
        "rows": plan.rows,
        "epochs": epochs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, 3 epochs, MLP only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    tasks = ["digits_mlp"] if args.quick else ["digits_mlp", "digits_cnn"]
    epochs, rounds = (3, 1) if args.quick else (6, 3)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for task in tasks:
            results[task] = measure(task, epochs, rounds, Path(workdir))
    print(f"{'task':<12} {'figure (goal)':<32} {'ratio':>7}")
    for task, found in results.items():
        for name, value in found["figures"].items():
            print(f"{task:<12} {name + f' (<= {GOALS[name]})':<32} {value:>7.3f}")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "results": results, "goals": GOALS, "folds": FOLDS, "torch_threads": 1,
            "cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
            "git_commit": git_commit(),
        }, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
