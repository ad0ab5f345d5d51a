"""What watching a sweep costs: the same sweep with tracking=none and with tracking=mlflow.

    python benchmarks/tracking_cost.py                 # iris, 3 folds, 8 epochs, 12 trials
    python benchmarks/tracking_cost.py --trials 24 --repeats 2

Both sweeps run the same trials (same seed, one trial at a time, so TPE and ASHA decide
alike) on one embedded Ray. Measured per trial:

- seconds on the driver inside the logging callbacks (MLflowTracker; TensorBoardWriter,
  which runs in both), timed around their real methods, and the sweep's wall time with
  and without MLflow (noisier: it includes Ray's own jitter);
- bytes: the MLflow store's growth (``mlflow.db`` over an empty store's size, plus
  ``mlflow_run.json``) and the TensorBoard event files.

The one-time cost (importing mlflow, creating the SQLite store, the parent run) is
reported apart. The export's artifacts on the parent are a copy of ``best/`` (its size).
Writes benchmarks/results/tracking_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "tracking_cost.json"
HOOKS = ("setup", "on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error",
         "on_experiment_end")  # fmt: skip


def timed(cls, spent: dict):
    """``cls`` with every Tune hook timed into ``spent[hook]`` (the real methods run)."""

    def wrap(name):
        method = getattr(cls, name)

        def hook(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return hook

    return type(f"Timed{cls.__name__}", (cls,), {n: wrap(n) for n in HOOKS if hasattr(cls, n)})


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def empty_store_bytes(tmp: Path) -> int:
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{tmp}/empty.db").search_experiments()  # creates the tables
    return (tmp / "empty.db").stat().st_size


def one_sweep(tracking: str, args, out: Path) -> dict:
    import hpo.sweep.runner as runner
    from hpo.config import compose_config
    from hpo.sweep import run_sweep
    from hpo.sweep.lock import release_run_dir
    from hpo.sweep.mlflow_tracking import MLflowTracker
    from hpo.sweep.tensorboard import TensorBoardWriter

    spent = {"mlflow": defaultdict(float), "tensorboard": defaultdict(float)}
    runner.MLflowTracker = timed(MLflowTracker, spent["mlflow"])
    runner.TensorBoardWriter = timed(TensorBoardWriter, spent["tensorboard"])
    cfg, _ = compose_config(
        [
            "data=iris",
            f"cv.folds={args.folds}",
            f"trainer.max_epochs={args.epochs}",
            f"trainer.patience={args.epochs}",
            f"budget.num_samples={args.trials}",
            "budget.max_concurrent_trials=1",
            f"tracking={tracking}",
            f"run_dir={out}",
        ]
    )
    started = time.perf_counter()
    result = run_sweep(cfg, stream=None)
    wall = time.perf_counter() - started
    release_run_dir(result.run_dir)
    epochs = int((result.trials["epoch"] > 0).sum())
    return {
        "tracking": tracking,
        "wall_s": wall,
        "trials": int(result.trials["trial_id"].nunique()),
        "epochs": epochs,
        "callback_s": {k: dict(v) for k, v in spent.items()},
        "bytes": {
            "mlflow_db": (out / "mlflow.db").stat().st_size if (out / "mlflow.db").exists() else 0,
            "mlflow_state": (out / "mlflow_run.json").stat().st_size
            if (out / "mlflow_run.json").exists()
            else 0,
            "tensorboard": folder_bytes(out / "tensorboard"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        empty = empty_store_bytes(tmp)  # (imports mlflow: its one-time cost, below)
        first_store_s = time.perf_counter() - started
        for repeat in range(args.repeats):  # alternate the order: the machine warms up
            order = ("none", "mlflow") if repeat % 2 == 0 else ("mlflow", "none")
            for tracking in order:
                runs.append(one_sweep(tracking, args, tmp / f"{tracking}_{repeat}"))
    ray.shutdown()

    def mean(key, tracking):
        values = [key(r) for r in runs if r["tracking"] == tracking]
        return sum(values) / len(values)

    trials = runs[0]["trials"]
    epochs = runs[0]["epochs"]
    mlflow_hooks = mean(lambda r: sum(r["callback_s"]["mlflow"].values()), "mlflow")
    mlflow_setup = mean(lambda r: r["callback_s"]["mlflow"].get("setup", 0.0), "mlflow")
    tb_hooks = mean(lambda r: sum(r["callback_s"]["tensorboard"].values()), "none")
    wall = {t: mean(lambda r: r["wall_s"], t) for t in ("none", "mlflow")}
    db_growth = mean(
        lambda r: r["bytes"]["mlflow_db"] - empty + r["bytes"]["mlflow_state"], "mlflow"
    )
    tb_bytes = mean(lambda r: r["bytes"]["tensorboard"], "none")
    result = {
        "sweep": {
            "data": "iris",
            "folds": args.folds,
            "max_epochs": args.epochs,
            "trials": trials,
            "epochs_reported": epochs,
            "repeats": args.repeats,
        },
        "one_time": {
            "mlflow_import_and_empty_store_s": round(first_store_s, 3),
            "empty_store_bytes": empty,
            "parent_run_setup_s": round(mlflow_setup, 3),
        },
        "per_trial": {
            "mlflow_callback_s": round((mlflow_hooks - mlflow_setup) / trials, 4),
            "mlflow_bytes": round(db_growth / trials),
            "tensorboard_callback_s": round(tb_hooks / trials, 4),
            "tensorboard_bytes": round(tb_bytes / trials),
            "sweep_wall_s_without": round(wall["none"] / trials, 3),
            "sweep_wall_s_with_mlflow": round(wall["mlflow"] / trials, 3),
        },
        "runs": runs,
        # a shared 2-core machine: wall times are noisy; the callback times are the logging
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    per = result["per_trial"]
    print(f"{trials} trials, {epochs} epochs reported ({args.folds} folds, {args.repeats} repeats)")
    print(f"MLflow per trial: {per['mlflow_callback_s'] * 1000:.1f} ms on the driver, "
          f"{per['mlflow_bytes']:,} bytes; once per sweep: {mlflow_setup:.2f} s "
          f"(+ {first_store_s:.1f} s import and empty store, {empty:,} bytes)")  # fmt: skip
    print(f"TensorBoard per trial: {per['tensorboard_callback_s'] * 1000:.1f} ms, "
          f"{per['tensorboard_bytes']:,} bytes")  # fmt: skip
    print(f"sweep wall per trial: {per['sweep_wall_s_without']:.2f} s without MLflow, "
          f"{per['sweep_wall_s_with_mlflow']:.2f} s with")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
