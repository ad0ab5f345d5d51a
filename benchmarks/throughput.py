"""How fast hpo's trials are, measured against plain PyTorch and the stock approach.

    python -m benchmarks.throughput            # the full run (a few minutes on 2 cores)
    python -m benchmarks.throughput --quick    # a smoke run
    python -m benchmarks.throughput --sweep-only   # the sweeps only (throughput_sweep.json)

In one run, on the built-in datasets and a synthetic 100k-row table (5 folds, the
default MLP, batch 64, one torch thread as a trial with cpus_per_trial=1 gets):

* per-fold epoch time of a trial vs a plain PyTorch loop on the same tensors and model
  (``per_fold_epoch_vs_plain``, goal <= 1.1);
* a 5-fold trial's epoch vs a single fold of the same trial (``k5_vs_single_fold``,
  goal <= 2.0 on CPU);
* a 30-trial sweep's wall time vs the ideal, the sum of the trials' own time divided by
  the concurrency (``sweep_wall_vs_ideal``, goal <= 1.10 for trials of about 5 s), and
  the same with the fixed start-up (the trial actors' start, measured by a pilot sweep)
  taken off (``wall_after_start_vs_ideal``: the waiting between trials), and for ours
  where the wall time went per worker (``breakdown``: its start, the waits between its
  trials, the run's end; printed after the table);

each for ``ours`` (hpo: folds trained together, the lean loop, actors reused) and for
``stock`` (folds one after another, each with a Lightning Trainer and a DataLoader; Ray
Tune's defaults: a new actor per trial, every checkpoint kept). Epoch times are CPU time
of this process (``time.process_time``), the median of interleaved rounds, so that
other work on a shared machine disturbs them less; sweeps are wall-clock time.
Everything is a ratio measured in the same run. Results:
benchmarks/results/throughput.json (every figure by name, the raw times, the CPU count
and the git commit) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.stock_baseline import sweep_stock, time_stock  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "throughput.json"
GOALS = {"per_fold_epoch_vs_plain": 1.1, "k5_vs_single_fold": 2.0, "sweep_wall_vs_ideal": 1.10}
FOLDS = 5


@dataclass(frozen=True)
class Dataset:
    """A table to time: epochs timed per round (after a warm-up epoch, if ``warmup``),
    and rounds: every approach is timed once per round, the rounds interleaved, and
    the median round counts (other work on a shared machine comes and goes)."""

    name: str
    epochs: int
    quick_epochs: int
    rounds: int = 3
    warmup: bool = True


DATASETS = [
    Dataset("iris", 10, 2),
    Dataset("wine", 10, 2),
    Dataset("breast_cancer", 5, 1),
    Dataset("digits", 3, 1),
    Dataset("diabetes", 6, 1),
    # 1,250 steps per fold-epoch: one epoch, no warm-up, one round keep it within budget.
    Dataset("synthetic_100k", 1, 1, rounds=1, warmup=False),
]


def compose(dataset: str, *overrides: str):
    from hpo.config import compose_config

    data = "digits" if dataset == "synthetic_100k" else dataset
    cfg, _ = compose_config(
        [f"data={data}", f"cv.folds={FOLDS}", "trainer.patience=1000", *overrides]
    )
    return cfg


def trial_data(dataset: str):
    from hpo.data import prepare_data

    cfg = compose(dataset)
    if dataset != "synthetic_100k":
        return cfg, prepare_data(cfg).trial_data
    import pandas as pd
    from sklearn.datasets import make_classification

    from hpo.data.sources import Table

    X, y = make_classification(
        n_samples=125_000, n_features=20, n_informative=10, n_classes=2, random_state=0
    )  # 100k rows for the folds after the 20% test split
    features = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    table = Table(features, pd.Series(y, name="target"), "synthetic_100k")
    return cfg, prepare_data(cfg, table=table).trial_data


def plain_config(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def one_fold(data, folds: int):
    from hpo.data.prepare import TrialData

    return TrialData(data.folds[:folds], data.input_dim, data.output_dim, data.task, data.classes)


def time_plain(data, plain: dict, epochs: int, warmup: bool) -> dict[str, float]:
    """A hand-written loop: fold 0's tensors, the same module and AdamW, shuffled slices,
    and each epoch the validation loss and accuracy."""
    from torch.nn import functional as F

    from hpo.models.build import build_module

    start = time.process_time()
    fold = data.folds[0]
    X, y = torch.as_tensor(fold.X_train), torch.as_tensor(fold.y_train)
    X_val, y_val = torch.as_tensor(fold.X_val), torch.as_tensor(fold.y_val)
    torch.manual_seed(0)
    module = build_module(
        plain["model"], data.input_dim, data.output_dim, data.task, plain["optim"]
    )
    optimizer = module.configure_optimizers()
    classify = data.task == "classification"
    loss_fn = F.cross_entropy if classify else F.mse_loss
    batch = int(plain["trainer"]["batch_size"])
    setup = time.process_time() - start
    marks = []
    for _ in range(epochs + warmup):
        marks.append(time.process_time())
        module.train()
        order = torch.randperm(X.shape[0])
        for begin in range(0, X.shape[0], batch):
            rows = order[begin : begin + batch]
            if rows.numel() < 2:
                continue
            loss = loss_fn(module(X[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        module.eval()
        with torch.no_grad():
            out = module(X_val)
            float(loss_fn(out, y_val))
            if classify:
                float((out.argmax(dim=1) == y_val).float().mean())
    marks.append(time.process_time())
    return {"setup_s": setup, "epoch_s": (marks[-1] - marks[int(warmup)]) / epochs}


def time_ours(data, plain: dict, epochs: int, warmup: bool) -> dict[str, Any]:
    from hpo.train import FoldTrainer

    start = time.process_time()
    trainer = FoldTrainer(data, plain["model"], plain["optim"], plain["trainer"], seed=0)
    setup = time.process_time() - start
    if warmup:
        trainer.run_epoch()
    start, wall = time.process_time(), time.perf_counter()
    for _ in range(epochs):
        trainer.run_epoch()
    epoch = (time.process_time() - start) / epochs
    wall_epoch = (time.perf_counter() - wall) / epochs
    return {
        "setup_s": setup,
        "epoch_s": epoch,
        "wall_epoch_s": wall_epoch,
        "engine": trainer.engine_name,
    }


# `--override KEY=VALUE` words for hpo's sweeps (e.g. trainer.checkpoint_every=5)
SWEEP_OVERRIDES: list[str] = []
# `--sweep-epochs N`: hpo's sweep trials train N epochs (None: sized by the pilot sweep)
SWEEP_EPOCHS: list[int] = []


def sweep_ours(trials: int, epochs: int, workdir: Path, name: str = "ours") -> dict:
    """A sweep of ``trials`` hpo trials (the real runner, FIFO, random search over the
    learning rate) on a running Ray: its wall time and every trial's own time."""
    from omegaconf import OmegaConf

    from hpo.config import validate_config
    from hpo.sweep.runner import run_sweep

    cfg = compose(
        "digits",
        "scheduler=fifo",
        "searcher=random",
        f"budget.num_samples={trials}",
        f"trainer.max_epochs={epochs}",
        f"output_dir={workdir}",
        *SWEEP_OVERRIDES,
    )
    cfg.search_space = {"optim.lr": "tag(log, interval(1e-4, 3e-2))"}
    cfg = validate_config(OmegaConf.to_container(cfg))
    start, clock = time.perf_counter(), time.time()
    result = run_sweep(cfg, run_dir=workdir / name, stream=None)
    wall = time.perf_counter() - start
    compute = result.trials.groupby("trial_id")["time_total_s"].max()
    return {
        "wall_s": wall,
        "trial_s": [float(v) for v in compute],
        **epoch_times(result.trials),
        "breakdown": wall_breakdown(result.trials, clock, clock + wall),
    }


def epoch_times(rows) -> dict[str, Any]:
    """From a sweep's rows: ``epoch_s``, the median epoch of a running trial with all its
    folds training (NaN if there is none), and ``first_epoch_s``, every trial's first
    epoch. A first epoch also pays one-time costs (a worker's first trial imports
    torch._dynamo on the optimizer's first call) and an epoch after a fold stopped early
    trains fewer folds, so neither tells how long the epochs of a longer trial take."""
    full = rows["folds_active"] == rows["folds_active"].max()
    later = rows.loc[full & (rows["training_iteration"] > 1), "time_this_iter_s"]
    first = rows.loc[rows["training_iteration"] == 1, "time_this_iter_s"]
    return {
        "epoch_s": float(later.median()) if len(later) else float("nan"),
        "first_epoch_s": [float(v) for v in first],
    }


def wall_breakdown(rows, began: float, ended: float) -> dict[str, float]:
    """Where a sweep's wall time went, per worker (Tune's ``pid``), from the trials' rows:
    ``start_s`` from the call until a worker's first trial began (the driver's data
    preparation, Tune's start, the worker's start and imports), ``between_trials_s`` the
    time a worker waited between its trials (all gaps, and per gap), ``end_s`` from its
    last trial's end to the call's return (the run's result files, Tune's end). A trial
    spans its last report's ``timestamp`` (whole seconds, taken as the middle) less its
    ``time_total_s``. The gaps are summed as measured, a negative one included: their
    rounding errors cancel in the sum but for the first and the last trial's, where
    clipping each gap at zero would add about a third of a second to every gap. A
    trial's ``time_total_s`` counts only the time inside its ``train()`` calls, so what a
    trial waits for the driver to take each epoch's result shows here too. Means over
    the workers."""
    trials = rows.groupby("trial_id").agg(
        end=("timestamp", "max"), busy=("time_total_s", "max"), pid=("pid", "last")
    )
    trials["end"] = trials["end"] + 0.5
    trials["begin"] = trials["end"] - trials["busy"]
    starts, gaps, ends, gap_count = [], [], [], 0
    for _, worker in trials.sort_values("begin").groupby("pid"):
        begins, finishes = worker["begin"].to_numpy(), worker["end"].to_numpy()
        starts.append(float(begins[0] - began))
        gaps.append(float((begins[1:] - finishes[:-1]).sum()))
        gap_count += len(worker) - 1
        ends.append(float(ended - finishes[-1]))
    workers = len(starts)
    return {
        "workers": workers,
        "start_s": round(sum(starts) / workers, 2),
        "between_trials_s": round(sum(gaps) / workers, 2),
        "per_gap_s": round(sum(gaps) / max(1, gap_count), 2),
        "end_s": round(sum(ends) / workers, 2),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator > 0 else float("nan")


def epoch_figures(dataset: Dataset, epochs: int) -> tuple[dict[str, float], dict[str, Any]]:
    name, warmup = dataset.name, dataset.warmup
    cfg, data = trial_data(name)
    plain = plain_config(cfg)
    single = one_fold(data, 1)
    timers = {
        "plain": lambda: time_plain(data, plain, epochs, warmup),
        "ours_k5": lambda: time_ours(data, plain, epochs, warmup),
        "ours_single_fold": lambda: time_ours(single, plain, epochs, warmup),
        "stock_k5": lambda: time_stock(data, plain, epochs, warmup),
        "stock_single_fold": lambda: time_stock(single, plain, epochs, warmup),
    }
    rounds: dict[str, list[dict[str, Any]]] = {approach: [] for approach in timers}
    for _ in range(dataset.rounds):
        for approach, timer in timers.items():
            rounds[approach].append(timer())
    raw: dict[str, Any] = {"rows_per_fold": [int(f.X_train.shape[0]) for f in data.folds]}
    for approach, results in rounds.items():
        results.sort(key=lambda result: result["epoch_s"])
        raw[approach] = {**results[len(results) // 2], "rounds": [r["epoch_s"] for r in results]}
    plain_epoch = raw["plain"]["epoch_s"]
    figures = {}
    for approach in ("ours", "stock"):
        k5, one = raw[f"{approach}_k5"]["epoch_s"], raw[f"{approach}_single_fold"]["epoch_s"]
        figures[f"{name}.{approach}.per_fold_epoch_vs_plain"] = ratio(k5 / FOLDS, plain_epoch)
        figures[f"{name}.{approach}.single_fold_epoch_vs_plain"] = ratio(one, plain_epoch)
        figures[f"{name}.{approach}.k5_vs_single_fold"] = ratio(k5, one)
    return figures, raw


def sweep_figures(
    trials: int, seconds: float, digits: dict[str, Any], deadline: float
) -> tuple[dict, dict]:
    """Both sweeps, with trials of about ``seconds`` of wall time each.

    A pilot sweep (one trial per slot) measures how long an epoch takes inside Ray on this
    machine as loaded now (:func:`epoch_times`); its wall time beyond its trials is the
    sweep's start-up cost (starting the trial actors). The stock sweep runs fewer trials
    if all of them (each paying an actor start) would not end before ``deadline``
    (``time.perf_counter``)."""
    from omegaconf import OmegaConf

    from hpo.cluster import start_ray, stop_ray

    # Ray workers import hpo (and the stock trainable's module) from here.
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    concurrency = os.cpu_count() or 1
    cfg, data = trial_data("digits")
    start_ray(OmegaConf.create({"address": None, "num_cpus": concurrency, "num_gpus": 0}))
    raw: dict[str, Any] = {"concurrency": concurrency, "trials": trials}
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            workdir = Path(directory)
            cpu_epoch = {a: digits[f"{a}_k5"]["epoch_s"] or 1e-3 for a in ("ours", "stock")}
            pilot_epochs = max(1, round(seconds / 2 / cpu_epoch["ours"]))
            pilot = sweep_ours(concurrency, pilot_epochs, workdir, name="pilot")
            trial_epoch = pilot["epoch_s"]  # not its whole trials: see epoch_times
            if not trial_epoch > 0:  # every pilot trial stopped after one epoch
                trial_epoch = sum(pilot["trial_s"]) / len(pilot["trial_s"]) / pilot_epochs
            slowdown = trial_epoch / cpu_epoch["ours"]  # wall in a trial vs CPU time alone
            startup = max(0.0, pilot["wall_s"] - max(pilot["trial_s"]))
            raw["pilot"] = {
                "epochs": pilot_epochs,
                "wall_s": round(pilot["wall_s"], 2),
                "trial_s": [round(t, 2) for t in pilot["trial_s"]],
                "startup_s": round(startup, 2),
                "epoch_s": round(trial_epoch, 4),
                "first_epoch_s": [round(t, 2) for t in pilot["first_epoch_s"]],
                "trial_epoch_vs_cpu_epoch": round(slowdown, 2),
                "breakdown": pilot["breakdown"],
            }
            for approach in ("ours", "stock"):
                epochs = max(1, round(seconds / (cpu_epoch[approach] * slowdown)))
                if approach == "ours":
                    epochs = SWEEP_EPOCHS[0] if SWEEP_EPOCHS else epochs
                    result = sweep_ours(trials, epochs, workdir)
                else:
                    left = deadline - time.perf_counter()
                    fits = int(left * concurrency / (seconds + startup))
                    count = max(min(trials, 2 * concurrency), min(trials, fits))
                    result = sweep_stock(data, plain_config(cfg), count, epochs, workdir)
                raw[approach] = sweep_summary(result, epochs, concurrency, startup)
                if "breakdown" in result:
                    raw[approach]["breakdown"] = result["breakdown"]
                for key in (
                    "sweep_wall_vs_ideal",
                    "wall_after_start_vs_ideal",
                    "mean_trial_s",
                    "overhead_per_trial_s",
                ):
                    figures[f"sweep.{approach}.{key}"] = raw[approach][key]
                figures[f"sweep.{approach}.trials"] = raw[approach]["trials_run"]
    finally:
        stop_ray()
    return figures, raw


def sweep_summary(
    result: dict, epochs: int, concurrency: int, startup: float = 0.0
) -> dict[str, Any]:
    """``startup``: the pilot's fixed start-up (the trial actors' start and imports),
    taken off the wall time for ``wall_after_start_vs_ideal``: the waiting between and
    around trials once the workers are up."""
    count, total = len(result["trial_s"]), sum(result["trial_s"])
    ideal = total / concurrency
    return {
        "epochs": epochs,
        "trials_run": count,
        "wall_s": round(result["wall_s"], 2),
        "ideal_s": round(ideal, 2),
        "sweep_wall_vs_ideal": ratio(result["wall_s"], ideal),
        "wall_after_start_vs_ideal": ratio(max(0.0, result["wall_s"] - startup), ideal),
        "mean_trial_s": round(total / count, 2),
        # What the sweep spent beyond its trials, per trial and slot.
        "overhead_per_trial_s": round((result["wall_s"] - ideal) * concurrency / count, 2),
    }


def print_table(figures: dict[str, float], stream=sys.stdout) -> None:
    rows = sorted({name.rsplit(".", 2)[0] + "|" + name.rsplit(".", 1)[1] for name in figures})
    print(f"{'case':<16} {'figure':<28} {'stock':>8} {'ours':>8} {'goal':>6}", file=stream)
    for row in rows:
        case, figure = row.split("|")
        goal = GOALS.get(figure)
        stock = figures.get(f"{case}.stock.{figure}", float("nan"))
        ours = figures.get(f"{case}.ours.{figure}", float("nan"))
        mark = "" if goal is None else ("  met" if ours <= goal else "  missed")
        goal_text = f"{goal:.2f}" if goal is not None else ""
        print(
            f"{case:<16} {figure:<28} {stock:>8.2f} {ours:>8.2f} {goal_text:>6}{mark}",
            file=stream,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few epochs and trials")
    parser.add_argument("--trials", type=int, default=None, help="sweep trials (default 30)")
    parser.add_argument("--trial-seconds", type=float, default=None, help="target trial length")
    parser.add_argument(
        "--sweep-only", action="store_true", help="only the sweeps (digits' epochs timed for them)"
    )
    parser.add_argument(
        "--sweep-epochs", type=int, default=None,
        help="epochs of each hpo sweep trial (default: sized by the pilot to --trial-seconds); "
        "fixed, two runs compare on the same trials",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--budget", type=float, default=510.0, help="seconds the whole run should stay within"
    )
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="an hpo override for its sweeps, e.g. trainer.checkpoint_every=5 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    SWEEP_OVERRIDES[:] = args.override
    SWEEP_EPOCHS[:] = [args.sweep_epochs] if args.sweep_epochs else []
    if args.sweep_only and args.output == RESULTS:
        args.output = RESULTS.with_name("throughput_sweep.json")
    trials = args.trials or (6 if args.quick else 30)
    seconds = args.trial_seconds or (2.0 if args.quick else 5.0)
    torch.set_num_threads(1)  # a trial with cpus_per_trial=1 gets one thread
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own deprecation
    started = time.perf_counter()
    figures: dict[str, float] = {}
    raw: dict[str, Any] = {}
    for dataset in DATASETS:
        if (args.quick and dataset.name == "synthetic_100k") or (
            args.sweep_only and dataset.name != "digits"
        ):
            continue
        epochs = dataset.quick_epochs if args.quick else dataset.epochs
        found, raw[dataset.name] = epoch_figures(dataset, epochs)
        figures.update(found)
        print(f"timed {dataset.name} ({time.perf_counter() - started:.0f}s)", flush=True)
    deadline = started + args.budget
    found, raw["sweep"] = sweep_figures(trials, seconds, raw["digits"], deadline)
    figures.update(found)
    report = {
        "figures": figures,
        "goals": GOALS,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "epoch_clock": "time.process_time (CPU time of the benchmark process)",
        "sweep_clock": "wall clock; ideal = sum of trials' time_total_s / concurrency",
        "quick": args.quick,
        "sweep_overrides": list(args.override),
        "sweep_epochs": args.sweep_epochs,
        "total_s": round(time.perf_counter() - started, 1),
        "raw": raw,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(figures)
    for name in ("pilot", "ours"):  # where the sweep's wall time went, per worker
        if "breakdown" in raw["sweep"].get(name, {}):
            print(f"sweep {name}, per worker: {raw['sweep'][name]['breakdown']}")
    print(f"written {args.output} in {report['total_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
