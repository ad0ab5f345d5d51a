"""Fold racing's saving and what it keeps: the same sweeps with and without
``scheduler.racing``, on real tasks and seeds, through ``hpo sweep``'s own run_sweep.

    python -m benchmarks.racing --tasks digits breast_cancer --seeds 0 1 --trials 16

For each (task, seed) both sweeps get the same trial budget; it reports the trial-epochs
each spent (one trial training its folds for one epoch), the saving, and the best CV
score each found. Results: benchmarks/results/racing.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import ray

from hpo.config import compose_config
from hpo.sweep import run_sweep


def one_sweep(task: str, seed: int, trials: int, racing: bool, out: Path) -> dict:
    cfg, _ = compose_config(
        [
            f"data={task}",
            "cv.folds=5",
            "trainer.max_epochs=12",
            f"budget.num_samples={trials}",
            "budget.max_concurrent_trials=1",
            f"seed={seed}",
            f"scheduler.racing={str(racing).lower()}",
            f"output_dir={out}",
        ]
    )
    result = run_sweep(cfg, stream=None)
    raced = result.extra.get("scheduler_state", {}).get("raced_out", {})
    return {
        "epochs": len(result.trials),
        "best": float(result.trials["val_loss"].min()),
        "raced_out": len(raced),
        "wall_s": result.wall_s,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits", "breast_cancer"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--output", default="benchmarks/results/racing.md")
    args = parser.parse_args(argv)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="hpo-racing-") as out:
            for task in args.tasks:
                for seed in args.seeds:
                    plain = one_sweep(task, seed, args.trials, False, Path(out))
                    raced = one_sweep(task, seed, args.trials, True, Path(out))
                    rows.append((task, seed, plain, raced))
                    print(task, seed, plain, raced, flush=True)
    finally:
        ray.shutdown()
    lines = [
        f"# Fold racing (ASHA + TPE, 5 folds, 12 epochs, {args.trials} trials, one at a time)",
        "",
        "| task | seed | trial-epochs ASHA | with racing | saved | raced out | best val_loss "
        "ASHA | with racing |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    savings = []
    for task, seed, plain, raced in rows:
        saved = 1 - raced["epochs"] / plain["epochs"]
        savings.append(saved)
        lines.append(
            f"| {task} | {seed} | {plain['epochs']} | {raced['epochs']} | {saved:.0%} | "
            f"{raced['raced_out']} | {plain['best']:.4f} | {raced['best']:.4f} |"
        )
    lines += ["", f"Median saving of trial-epochs: {statistics.median(savings):.0%}."]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
