"""The simulated comparison: every replay method on every recorded task, many seeds, 1 and
4 workers, and its statistics (anytime regret, time-to-target, won-tied-lost, bootstrap
confidence intervals over seeds).

    python -m benchmarks.replay_report                 # the full run (minutes, one process)
    python -m benchmarks.replay_report --quick         # 3 seeds, 1 worker: a smoke run
    python -m benchmarks.replay_report --seeds 20 --workers 1 4 --trials 50
    python -m benchmarks.replay_report --mode nearest  # answer with the nearest curve

Reads benchmarks/results/curves_recorded.parquet (benchmarks.record_curves) and, for the
forest surrogate (``--mode forest``, the default), curves_folds.parquet (the fold spread
that sets its noise); writes benchmarks/results/replay_runs.parquet (one row per run, with
its regret at fixed fractions of its budget), replay.md (the tables) and
replay_anytime.png, with ``_nearest`` before the suffix in ``--mode nearest``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import aggregate  # noqa: E402
from benchmarks.aggregate import markdown  # noqa: E402
from benchmarks.definitions import BENCHMARKS  # noqa: E402
from benchmarks.record_curves import RECORDED  # noqa: E402
from benchmarks.replay import (  # noqa: E402
    DEFAULT,
    RANDOM_BASELINE,
    REFERENCES,
    REPLAY_METHODS,
    Curves,
    lookup_fidelity,
    run_replay,
)
from benchmarks.surrogate import RESPONDERS, make_responder  # noqa: E402

RESULTS = RECORDED.parent
FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # of the epoch budget, for the anytime regret (tables)
CURVE_POINTS = 20  # the anytime plot: regret at 1/20, 2/20, ... of the budget
TIE = 1e-9  # regrets closer than this (in units of the task's scale) tie


def load_curves(path: Path = RECORDED, tasks: list[str] | None = None) -> dict[str, Curves]:
    from hpo.config import compose_config
    from hpo.space import build_search_space

    table = pd.read_parquet(path)
    curves = {}
    for task, rows in table.groupby("task", sort=False):
        if tasks and task not in tasks:
            continue
        definition = BENCHMARKS[task]
        cfg, _ = compose_config(definition.hydra_overrides(0))
        space, _ = build_search_space(cfg.search_space)
        curves[task] = Curves.from_table(rows, definition.metric, definition.mode, space)
    return curves


def run_summary(rows: pd.DataFrame, budget: int) -> dict:
    """Final regret, regret at FRACTIONS of the budget, trials, simulated seconds."""
    out = {
        "final_regret": float(rows["regret"].iloc[-1]) if len(rows) else math.inf,
        "trials": int(rows["trial"].nunique()),
        "epochs": len(rows),
        "sim_s": float(rows["time_s"].iloc[-1]) if len(rows) else 0.0,
    }
    for fraction in FRACTIONS:
        out[f"regret@{fraction:g}"] = regret_at(rows, budget, fraction)
    out["anytime"] = [regret_at(rows, budget, (k + 1) / CURVE_POINTS) for k in range(CURVE_POINTS)]
    return out


def regret_at(rows: pd.DataFrame, budget: int, fraction: float) -> float:
    """The regret of the best so far once ``fraction`` of the budget's epochs are spent."""
    upto = rows[rows["cum_epochs"] <= max(1, int(budget * fraction))]
    return float(upto["regret"].iloc[-1]) if len(upto) else math.inf


def plot_anytime(frame: pd.DataFrame, path: Path) -> None:
    """Median regret over seeds against the budget spent: a panel per task and workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(frame["task"]))
    workers = sorted(set(frame["workers"]))
    fig, axes = plt.subplots(
        len(workers), len(tasks), figsize=(3.2 * len(tasks), 2.8 * len(workers)), squeeze=False
    )
    x = np.arange(1, CURVE_POINTS + 1) / CURVE_POINTS
    for i, n_workers in enumerate(workers):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            part = frame[(frame["task"] == task) & (frame["workers"] == n_workers)]
            for name, group in part.groupby("method", sort=False):
                curves = np.minimum(np.vstack(group["anytime"].to_numpy()), 10.0)
                style = {"linewidth": 2.5, "color": "black"} if name == DEFAULT else {}
                ax.plot(x, np.median(curves, axis=0), label=name, **style)
            ax.set_yscale("symlog", linthresh=0.05)
            ax.set_title(f"{task}, {n_workers} worker(s)", fontsize=9)
            ax.set_xlabel("fraction of the epoch budget", fontsize=8)
            if j == 0:
                ax.set_ylabel("median regret", fontsize=8)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def time_to(rows: pd.DataFrame, regret: float) -> float:
    """Simulated seconds until the run's best so far is within ``regret``; inf: never."""
    hit = rows[rows["regret"] <= regret + TIE]
    return float(hit["time_s"].iloc[0]) if len(hit) else math.inf


def run_all(
    curves: dict[str, Curves],
    methods: list[str],
    seeds: list[int],
    workers: list[int],
    trials: int,
    stream=sys.stdout,
    responders: dict | None = None,
) -> pd.DataFrame:
    """Every (task, method, workers, seed) run; one summary row each, with ``ttt_ratio``:
    the simulated time to reach the final regret of random search (FIFO) on the same task,
    seed and workers, divided by that random run's whole time (below 1: sooner)."""
    from omegaconf import OmegaConf

    from hpo.config import compose_config

    summaries, runs = [], {}
    for task, task_curves in curves.items():
        definition = BENCHMARKS[task]
        budget = trials * definition.max_epochs
        for name in methods:
            method = REPLAY_METHODS[name]
            base, _ = compose_config([*definition.hydra_overrides(0), *method.overrides])
            started = time.perf_counter()
            for n_workers in workers:
                for seed in seeds:
                    cfg = OmegaConf.merge(base, {"seed": seed})
                    responder = (responders or {}).get(task)
                    rows = run_replay(task_curves, method, cfg, budget, n_workers, responder)
                    runs[(task, name, n_workers, seed)] = rows
                    summaries.append(
                        {"task": task, "method": name, "workers": n_workers, "seed": seed,
                         "budget_epochs": budget, "curves": int(rows["curve"].nunique()),
                         **run_summary(rows, budget)}
                    )  # fmt: skip
            if stream is not None:
                print(
                    f"{task} {name}: {time.perf_counter() - started:.1f}s", file=stream, flush=True
                )
    frame = pd.DataFrame(summaries)
    return add_time_to_target(frame, runs)


def add_time_to_target(frame: pd.DataFrame, runs: dict) -> pd.DataFrame:
    frame = frame.copy()
    ratios = []
    for row in frame.itertuples():
        base = runs.get((row.task, RANDOM_BASELINE, row.workers, row.seed))
        if base is None or base.empty:
            ratios.append(math.nan)
            continue
        target = float(base["regret"].iloc[-1])
        ratios.append(
            time_to(runs[(row.task, row.method, row.workers, row.seed)], target)
            / float(base["time_s"].iloc[-1])
        )
    frame["ttt_ratio"] = ratios
    return frame


def bootstrap_ci(values, statistic=np.median, resamples: int = 2000, seed: int = 0):
    """Percentile bootstrap 95% interval of ``statistic`` over ``values`` (the seeds)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = rng.choice(arr, size=(resamples, arr.size), replace=True)
    stats = statistic(samples, axis=1)
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


def won_tied_lost(frame: pd.DataFrame, first: str, second: str, column: str = "final_regret"):
    """Paired by (task, workers, seed): runs where ``first`` has the lower ``column``, the
    same, or a higher one; and the bootstrap CI of the mean of (second - first) (positive:
    ``first`` better)."""
    keys = ["task", "workers", "seed"]
    a = frame[frame["method"] == first].set_index(keys)[column]
    b = frame[frame["method"] == second].set_index(keys)[column]
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    finite_max = np.finfo(float).max / 4
    gain = np.minimum(joined["b"], finite_max) - np.minimum(joined["a"], finite_max)
    won, lost = int((gain > TIE).sum()), int((gain < -TIE).sum())
    low, high = bootstrap_ci(gain.to_numpy(), statistic=np.mean)
    return {
        "won": won,
        "tied": len(gain) - won - lost,
        "lost": lost,
        "mean_gain": float(gain.mean()) if len(gain) else math.nan,
        "ci_low": low,
        "ci_high": high,
    }


def fmt(value: float, digits: int = 3) -> str:
    return aggregate.fmt(value, digits)


def median_ci(values) -> str:
    low, high = bootstrap_ci(values)
    return f"{fmt(float(np.median(values)))} [{fmt(low)}, {fmt(high)}]"


def method_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method and workers: the median over tasks of each task's median final regret,
    each task's median [95% CI], anytime regret and time-to-target."""
    rows = []
    tasks = list(dict.fromkeys(frame["task"]))
    for (name, n_workers), group in frame.groupby(["method", "workers"], sort=False):
        per_task = group.groupby("task")["final_regret"].median()
        row = {
            "method": name,
            "workers": n_workers,
            "median regret (tasks)": fmt(float(per_task.median())),
        }
        for task in tasks:
            row[task] = median_ci(group.loc[group["task"] == task, "final_regret"])
        for fraction in FRACTIONS[:-1]:
            row[f"regret @{fraction:g}"] = fmt(float(group[f"regret@{fraction:g}"].median()))
        ratios = group["ttt_ratio"].to_numpy(dtype=float)
        reached = int(np.isfinite(ratios).sum())
        ttt = float(np.median(np.minimum(ratios, 1e300)))
        row["time-to-target"] = (
            f"{fmt(ttt if ttt < 1e300 else math.inf, 2)} ({reached}/{len(ratios)})"
        )
        row["trials"] = f"{group['trials'].median():.0f}"
        if "curves" in group:
            row["distinct curves"] = f"{group['curves'].median():.0f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["workers", "median regret (tasks)"], kind="stable")


def pair_table(frame: pd.DataFrame, first: str, others: list[str]) -> pd.DataFrame:
    """``first`` against each other method per task (workers pooled) and over all tasks."""
    rows = []
    for other in others:
        for task in [*dict.fromkeys(frame["task"]), "all"]:
            part = frame if task == "all" else frame[frame["task"] == task]
            result = won_tied_lost(part, first, other)
            rows.append(
                {
                    "versus": other,
                    "task": task,
                    "won-tied-lost": f"{result['won']}-{result['tied']}-{result['lost']}",
                    "mean regret gain [95% CI]": (
                        f"{fmt(result['mean_gain'])} [{fmt(result['ci_low'])}, "
                        f"{fmt(result['ci_high'])}]"
                    ),
                }
            )
    return pd.DataFrame(rows)


def pair_matrix(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Every pair: won-tied-lost of the row's method against the column's, all tasks,
    workers and seeds pooled."""
    rows = []
    for first in methods:
        row = {"method": first}
        for second in methods:
            if first == second:
                row[second] = ""
                continue
            r = won_tied_lost(frame, first, second)
            row[second] = f"{r['won']}-{r['tied']}-{r['lost']}"
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(frame: pd.DataFrame, default: str = DEFAULT) -> list[str]:
    """Whether ``default`` beats each reference on median regret across tasks."""
    lines = []
    for n_workers, group in frame.groupby("workers"):
        medians = group.groupby(["method", "task"])["final_regret"].median()
        across = medians.groupby("method").median()
        for reference in REFERENCES:
            if reference not in across or default not in across:
                continue
            mine, theirs = across[default], across[reference]
            word = "beats" if mine < theirs else ("ties" if mine == theirs else "LOSES TO")
            lines.append(
                f"{n_workers} worker(s): {default} {word} {reference} on median regret "
                f"across tasks ({mine:.3f} vs {theirs:.3f})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=RECORDED)
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--methods", nargs="*", default=list(REPLAY_METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--trials", type=int, default=50, help="budget: full-length trials")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="3 seeds, 1 worker")
    parser.add_argument("--mode", choices=RESPONDERS, default="forest", help="how to answer")
    parser.add_argument("--load", nargs="*", type=Path, help="report these replay_runs files")
    parser.add_argument("--pairs", nargs="*", default=[DEFAULT], help="methods paired with all")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.workers = 3, [1]
    import warnings

    warnings.filterwarnings("ignore")  # Optuna's experimental-feature warnings
    started = time.perf_counter()
    curves = load_curves(args.input, args.tasks)
    nearest = {task: lookup_fidelity(c) for task, c in curves.items()}
    responders = {task: make_responder(args.mode, c) for task, c in curves.items()}
    fidelity = {task: r.fidelity() for task, r in responders.items()}
    methods = [m for m in args.methods if m in REPLAY_METHODS]
    if RANDOM_BASELINE not in methods:
        methods.append(RANDOM_BASELINE)
    if args.load:  # runs already simulated (for instance by processes split by --tasks)
        frame = pd.concat([pd.read_parquet(path) for path in args.load], ignore_index=True)
        frame = frame[frame["method"].isin(methods) & frame["task"].isin(curves)]
    else:
        seeds = list(range(args.seeds))
        frame = run_all(curves, methods, seeds, args.workers, args.trials, responders=responders)
    suffix = "" if args.mode == "forest" else f"_{args.mode}"
    args.output.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.output / f"replay_runs{suffix}.parquet", index=False)
    plot_anytime(frame, args.output / f"replay_anytime{suffix}.png")
    pairs = []
    for first in (m for m in args.pairs if m in methods):
        others = [m for m in methods if m != first]
        pairs += [
            f"## {first} against each method (paired by task, workers and seed)",
            "",
            markdown(pair_table(frame, first, others)),
            "",
        ]
    lines = [
        f"# Simulated comparison, {args.mode} replay ({args.seeds} seeds, workers "
        f"{args.workers}, budget "
        f"{args.trials} full-length trials, "
        + ("reported from saved runs)" if args.load else f"{time.perf_counter() - started:.0f}s)"),
        "",
        "Recorded curves, and the held-out rank correlation of a curve's best value with the "
        f"answer's ({args.mode}; nearest-curve lookup): "
        + ", ".join(
            f"{t} {len(c.values)} ({fidelity[t]:.2f}; {nearest[t]:.2f})" for t, c in curves.items()
        ),
        "",
        *[line for first in args.pairs for line in verdict(frame, first)],
        "",
        "## Final regret (0 = the best "
        + ("recorded curve" if args.mode == "nearest" else "surrogate mean")
        + ", 1 = the median recorded one)",
        "",
        markdown(method_table(frame)),
        "",
        *pairs,
        "## Every pair: won-tied-lost of the row against the column (final regret)",
        "",
        markdown(pair_matrix(frame, methods)),
        "",
    ]
    text = "\n".join(lines)
    (args.output / f"replay{suffix}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
