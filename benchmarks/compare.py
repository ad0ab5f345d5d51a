"""Which search strategy wins, on equal budgets, over seeds.

    python -m benchmarks.compare            # every task and method, 5 seeds (see README)
    python -m benchmarks.compare --quick    # 3 tasks, 3 seeds: under 15 minutes on 2 cores

One loop over (task, seed, method) runs every method on every task with the same
trial-epoch budget, tags every result and writes, under benchmarks/results/ (``quick/``
for --quick): ``runs.parquet`` (one row per run: final CV score, chosen configuration,
its test score, time-to-target, ranks), ``curves.parquet`` (every report in arrival order:
the anytime curves), ``summary.md`` (the tables) and ``anytime.png``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import aggregate
from benchmarks.anytime import AnytimeLog, best_so_far, chosen_row, incumbent_scores
from benchmarks.definitions import (
    BENCHMARKS,
    FULL_SEEDS,
    QUICK_SEEDS,
    QUICK_TASKS,
    BenchmarkDefinition,
    shrink,
)
from benchmarks.methods import METHODS, RANDOM_BASELINE, Method
from benchmarks.model_task import refit_epochs
from benchmarks.report import render, write_results
from hpo.config import compose_config

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
CURVE_COLUMNS = ["cum_epochs", "wall_s", "trial_id", "epoch", "value", "finished"]


def run_one(
    definition: BenchmarkDefinition, method: Method, seed: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One (task, method, seed) run: its tagged anytime curve and its summary row."""
    cfg, _ = compose_config([*definition.hydra_overrides(seed), *method.overrides])
    objective = definition.make_objective(cfg)
    log = AnytimeLog(objective.metric, definition.epoch_budget, definition.time_budget_s)
    method.run(objective, cfg, log, definition.n_workers)
    run_s = log.elapsed()
    frame = log.frame()
    tags = {"task": definition.name, "method": method.name, "seed": seed}
    row: dict[str, Any] = {
        **tags,
        "metric": definition.metric,
        "mode": definition.mode,
        "test_metric": definition.test_metric,
        "test_mode": definition.test_mode,
        "max_epochs": definition.max_epochs,
        "epoch_budget": definition.epoch_budget,
        "n_workers": definition.n_workers,
        "epochs_spent": len(frame),
        "budget_hit": "epochs" if len(frame) >= definition.epoch_budget else "time",
        "trials": int(frame["trial_id"].nunique()) if len(frame) else 0,
        "completed": int(frame.loc[frame["finished"], "trial_id"].nunique()) if len(frame) else 0,
        "failed": log.failed,
        "wall_s": float(frame["wall_s"].iloc[-1]) if len(frame) else run_s,
        "run_s": run_s,
    }
    chosen = chosen_row(frame, definition.mode) if len(frame) else None
    if chosen is None:
        row.update(final_cv=math.nan, test_score=math.nan)
    else:
        epochs = refit_epochs(chosen)
        started = time.monotonic()
        tests = objective.test_scores(chosen["params"], epochs)
        row.update(
            final_cv=float(chosen["value"]),
            chosen_trial=chosen["trial_id"],
            chosen_epoch=int(chosen["epoch"]),
            refit_epochs=epochs,
            params=json.dumps(chosen["params"], default=str),
            test_score=tests.get(definition.test_metric, math.nan),
            test_s=time.monotonic() - started,
            **tests,
        )
    curve = frame.reindex(columns=CURVE_COLUMNS)
    curve["best_so_far"] = best_so_far(curve["value"], definition.mode)
    exact = getattr(objective, "exact_regret", None)
    curve["incumbent_regret"] = (
        incumbent_scores(frame, definition.mode, exact) if exact and len(frame) else math.nan
    )
    curve.insert(0, "metric", definition.metric)
    for position, (key, value) in enumerate(tags.items()):
        curve.insert(position, key, value)
    return curve, row


def summarize(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Add time-to-target and ranks to the run rows."""
    if RANDOM_BASELINE in set(runs["method"]):
        runs = aggregate.add_time_to_target(runs, curves, RANDOM_BASELINE)
    else:
        runs = runs.assign(ttt_ratio=math.nan)
    return aggregate.add_ranks(runs)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 tasks, 3 seeds (<15 min)")
    parser.add_argument("--tasks", nargs="+", choices=list(BENCHMARKS), help="tasks to run")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="methods to run")
    parser.add_argument("--seeds", type=int, help="number of seeds (0, 1, ...)")
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiply every epoch budget"
    )
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="DIR",
        help="only rewrite summary.md and anytime.png from the results in DIR",
    )
    return parser.parse_args(argv)


def run_comparison(
    definitions: list[BenchmarkDefinition],
    methods: list[Method],
    seeds: list[int],
    stream=sys.stdout,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every method on every task and seed, on a Ray that is already running.

    Returns ``(runs, curves)``: one row per run with time-to-target and ranks, and every
    report of every run, each tagged with its task, method and seed.
    """
    total = len(definitions) * len(seeds) * len(methods)
    started = time.monotonic()
    curves, rows = [], []
    # (task, seed, method): a run cut short still holds complete paired comparisons.
    for definition in definitions:
        for seed in seeds:
            for method in methods:
                try:
                    curve, row = run_one(definition, method, seed)
                    curves.append(curve)
                except Exception as exc:  # one broken run must not lose the others
                    traceback.print_exc()
                    row = {"task": definition.name, "method": method.name, "seed": seed}
                    row["error"] = f"{type(exc).__name__}: {exc}"
                rows.append(row)
                if stream is not None:
                    print(progress_line(len(rows), total, row, started), file=stream, flush=True)
    curve_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return summarize(pd.DataFrame(rows), curve_frame), curve_frame


def start_ray(num_cpus: int) -> None:
    """One embedded Ray for the whole comparison."""
    import ray

    # Ray runs trial workers at niceness 15 by default; on a shared machine they would then
    # starve behind everyone else's processes while the in-process Optuna baseline runs at
    # the driver's priority. One priority for all methods keeps wall times comparable.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Ray workers unpickle the synthetic trainable from this package.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )


def main(argv: list[str] | None = None) -> int:
    import ray

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        render(args.render)
        return 0
    task_names = args.tasks or (list(QUICK_TASKS) if args.quick else list(BENCHMARKS))
    seeds = (
        list(range(args.seeds)) if args.seeds else list(QUICK_SEEDS if args.quick else FULL_SEEDS)
    )
    definitions = [BENCHMARKS[name] for name in task_names]
    if args.budget_scale != 1.0:
        definitions = [shrink(d, args.budget_scale) for d in definitions]
    methods = [METHODS[name] for name in (args.methods or list(METHODS))]
    out = args.out or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    total = len(definitions) * len(seeds) * len(methods)
    print(
        f"benchmarks: {len(definitions)} tasks x {len(seeds)} seeds x {len(methods)} methods "
        f"= {total} runs -> {out}",
        flush=True,
    )
    started = time.monotonic()
    start_ray(max(2, *(d.n_workers for d in definitions)))
    try:
        runs, curves = run_comparison(definitions, methods, seeds)
    finally:
        ray.shutdown()
    minutes = (time.monotonic() - started) / 60
    command = " ".join(["python -m benchmarks.compare", *argv])
    header = (
        f"# Search strategies on equal budgets ({'quick' if args.quick else 'full'} run)\n\n"
        f"`{command}`, {_dt.datetime.now():%Y-%m-%d %H:%M}: {len(definitions)} tasks x "
        f"{len(seeds)} seeds x {len(methods)} methods = {total} runs in {minutes:.1f} min, "
        "one embedded Ray with 2 CPUs on a 2-core machine shared with other work (wall "
        "times are noisy: compare them within one run only).\n"
    )
    write_results(runs, curves, out, header)
    errors = int(runs["error"].notna().sum()) if "error" in runs else 0
    print(f"benchmarks: {total} runs in {minutes:.1f} min; {errors} failed; see {out}")
    return 1 if errors else 0


def progress_line(done: int, total: int, row: dict[str, Any], started: float) -> str:
    head = f"[{done:>3}/{total}] {row['task']:<13} {row['method']:<15} seed {row['seed']}"
    if "error" in row:
        return f"{head}: FAILED {row['error']}"
    return (
        f"{head}: cv {row['final_cv']:.4f}  {row['test_metric']} {row['test_score']:.4f}  "
        f"{row['trials']} trials, {row['epochs_spent']} epochs in {row['wall_s']:.0f}s  "
        f"| {(time.monotonic() - started) / 60:.1f} min"
    )


if __name__ == "__main__":
    sys.exit(main())
