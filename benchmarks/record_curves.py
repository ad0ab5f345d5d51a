"""Record real learning curves for the simulated benchmark (benchmarks.replay).

    python -m benchmarks.record_curves                      # every real task, 250 trials each
    python -m benchmarks.record_curves --tasks wine --trials 20 --minutes 2

For each real task of benchmarks.definitions (the same data, folds, epochs and early
stopping as the live comparison) this runs a real ``hpo sweep`` (hpo.sweep.run_sweep: Ray
Tune, hpo's trial function, one worker) with ``searcher=random scheduler=fifo``, so every
sampled configuration trains until its own early stopping or ``max_epochs``, and keeps
from its trials.parquet, per trial and epoch: the configuration, the fold-mean metric the
task optimizes, whether the trial ended by itself there, and the wall seconds of that
epoch inside the trial (``time_total_s`` differences; the first epoch includes the
trial's own start-up). The table goes to benchmarks/results/curves_recorded.parquet
(zstd, a few hundred kB), with the run's settings in curves_recorded.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.definitions import BENCHMARKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "results" / "curves_recorded.parquet"
REAL_TASKS = ("digits", "breast_cancer", "wine", "diabetes")
RECORD_SEED = 1000  # not one of the comparison's seeds


def record_task(task: str, trials: int, minutes: float, workdir: Path) -> pd.DataFrame:
    """One random-search FIFO sweep of ``task``: its per-epoch rows, tidy."""
    from hpo.config import compose_config
    from hpo.sweep import run_sweep
    from hpo.sweep.lock import release_run_dir
    from hpo.sweep.results import TRIALS_FILE

    definition = BENCHMARKS[task]
    cfg, _ = compose_config(
        [
            *definition.hydra_overrides(RECORD_SEED),
            "searcher=random",
            "scheduler=fifo",
            f"budget.num_samples={trials}",
            f"budget.time_budget_s={minutes * 60:.0f}",
            "budget.max_concurrent_trials=1",
            "cluster.num_cpus=1",
            "export.baselines=false",
        ]
    )
    run_dir = workdir / task
    result = run_sweep(cfg, run_dir=run_dir, stream=None)
    release_run_dir(result.run_dir)
    frame = pd.read_parquet(run_dir / TRIALS_FILE)
    return tidy(frame, task, definition.metric, list(cfg.search_space))


def tidy(frame: pd.DataFrame, task: str, metric: str, keys: list[str]) -> pd.DataFrame:
    """trials.parquet rows -> task, trial, the hyperparameters, epoch, value, finished,
    epoch_s (wall seconds of that epoch inside the trial) and, where the trials report them,
    fold_values (the epoch's value on each fold)."""
    frame = frame[frame[metric].notna() & (frame["epoch"] > 0)].copy()
    frame = frame.sort_values(["trial_index", "epoch"])
    total = frame["time_total_s"].astype(float)
    frame["epoch_s"] = total - total.groupby(frame["trial_index"]).shift(1).fillna(0.0)
    finished = frame.get("trial_finished")
    frame["finished"] = False if finished is None else finished.fillna(False).astype(bool)
    columns = ["trial_index", *keys, "epoch", metric, "finished", "epoch_s"]
    if f"fold_{metric}" in frame:  # each fold's value: the replay's noise is their spread
        frame["fold_values"] = frame[f"fold_{metric}"].map(_floats)
        columns.append("fold_values")
    out = frame[columns].rename(columns={"trial_index": "trial", metric: "value"})
    out.insert(0, "task", task)
    return out.reset_index(drop=True)


def _floats(values) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="*", default=list(REAL_TASKS))
    parser.add_argument("--trials", type=int, default=250, help="trials per task")
    parser.add_argument("--minutes", type=float, default=12.0, help="wall minutes per task")
    parser.add_argument("--output", type=Path, default=RECORDED)
    parser.add_argument(
        "--append", action="store_true", help="keep the output's other tasks (record the rest)"
    )
    args = parser.parse_args(argv)
    tables, meta = [], {"tasks": {}, "seed": RECORD_SEED, "method": "random search, FIFO"}
    if args.append and args.output.exists():
        kept = pd.read_parquet(args.output)
        tables.append(kept[~kept["task"].isin(args.tasks)])
        old = json.loads(args.output.with_suffix(".json").read_text())["tasks"]
        meta["tasks"] = {t: v for t, v in old.items() if t not in args.tasks}
    with tempfile.TemporaryDirectory(prefix="hpo-record-") as directory:
        for task in args.tasks:
            started = time.perf_counter()
            table = record_task(task, args.trials, args.minutes, Path(directory))
            tables.append(table)
            meta["tasks"][task] = {
                "trials": int(table["trial"].nunique()),
                "rows": len(table),
                "metric": BENCHMARKS[task].metric,
                "mode": BENCHMARKS[task].mode,
                "max_epochs": BENCHMARKS[task].max_epochs,
                "wall_s": round(time.perf_counter() - started, 1),
            }
            print(f"{task}: {meta['tasks'][task]}", flush=True)
            # Written after every task: a cut-short recording keeps what it has.
            args.output.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(tables, ignore_index=True).to_parquet(
                args.output, index=False, compression="zstd"
            )
            args.output.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
