"""PNG plots of the anytime curves: median and interquartile band over seeds, per method,
against trial-epochs spent and against wall time."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on the benchmark machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GRID_POINTS = 200


def step_values(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The step function through (x, y) on ``grid``: the last y at or before each point."""
    index = np.searchsorted(x, grid, side="right") - 1
    values = np.where(index >= 0, y[np.clip(index, 0, None)], np.nan)
    return values.astype(float)


def band(curves: pd.DataFrame, x: str, y: str, grid: np.ndarray) -> np.ndarray:
    """Rows: seeds; columns: the grid. A grid point where some seed has no report yet is
    NaN for all, so the median is never over a subset of the seeds."""
    values = np.vstack(
        [
            step_values(run[x].to_numpy(float), run[y].to_numpy(float), grid)
            for _, run in curves.groupby("seed")
        ]
    )
    values[:, np.isnan(values).any(axis=0)] = np.nan
    return values


def plot_anytime(
    curves: pd.DataFrame, path: Path, labels: dict[str, str], default: str, title: str = ""
) -> Path:
    """One row per task: best-so-far against trial-epochs (left) and wall time (right).
    The synthetic task plots the exact regret of the incumbent, on a log scale."""
    tasks = list(dict.fromkeys(curves["task"]))
    methods = list(dict.fromkeys(curves["method"]))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(tasks), 2, figsize=(12, 3.4 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        of_task = curves[curves["task"] == task]
        regret = of_task["incumbent_regret"].notna().any()
        y = "incumbent_regret" if regret else "best_so_far"
        for col, x in enumerate(("cum_epochs", "wall_s")):
            ax = axes[row][col]
            grid = np.linspace(0.0, float(of_task[x].max()), GRID_POINTS)
            tops, lows = [], []
            for method in methods:
                runs = of_task[of_task["method"] == method]
                if runs.empty:
                    continue
                values = band(runs, x, y, grid)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN before 1st report
                    q25, q50, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
                ax.plot(
                    grid,
                    q50,
                    color=colors[method],
                    lw=2.4 if method == default else 1.3,
                    label=labels.get(method, method),
                )
                ax.fill_between(grid, q25, q75, color=colors[method], alpha=0.12, lw=0)
                finite = q50[np.isfinite(q50)]
                if finite.size:
                    tops.append(finite[min(len(finite) - 1, len(finite) // 10)])
                    lows.append(np.nanmin(q25))
            if regret:
                ax.set_yscale("log")
            elif tops:
                # Cut the first tenth's high values so the part where methods differ shows.
                low, high = min(lows), max(tops)
                ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
            ax.set_xlabel("trial-epochs spent" if x == "cum_epochs" else "wall time (s)")
            metric = "exact regret of incumbent" if regret else f"best {of_task['metric'].iloc[0]}"
            ax.set_ylabel(metric)
            ax.set_title(f"{task}: {metric} vs {'epochs' if x == 'cum_epochs' else 'time'}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
