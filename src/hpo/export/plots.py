"""The report's figures, drawn with matplotlib (Agg) and Optuna's matplotlib plots.

Each function returns a Figure or None when there is nothing to draw; the HTML writer
saves and embeds them.
"""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

STATUS_COLORS = {"completed": "tab:green", "stopped": "tab:orange", "failed": "tab:red"}
TOP_FEATURES = 15


def learning_curves(
    histories: list[list[dict]],
    refit: list[dict] | None,
    metric: str | None,
    best_epochs: list[int] | None = None,
) -> Figure | None:
    """Train and validation loss per fold of the best trial (and the refit's train loss);
    the sweep's metric per fold beside it when it is not the loss. Dots: each fold's
    early-stopping epoch."""
    if not histories:
        return None
    second = metric if metric and metric not in ("val_loss", "train_loss") else None
    fig, axes = plt.subplots(1, 2 if second else 1, figsize=(11 if second else 6.5, 4))
    axes = np.atleast_1d(axes)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, fold in enumerate(histories):
        epochs = [h["epoch"] for h in fold]
        color = colors[i % len(colors)]
        axes[0].plot(epochs, [h["val_loss"] for h in fold], color=color, label=f"fold {i} val")
        axes[0].plot(
            epochs, [h["train_loss"] for h in fold], color=color, ls="--", label=f"fold {i} train"
        )
        best = (best_epochs or [None] * len(histories))[i]
        if best in epochs:
            axes[0].plot(best, fold[epochs.index(best)]["val_loss"], "o", color=color)
        if second:
            key = second.removeprefix("val_")
            axes[1].plot(epochs, [h.get(key) for h in fold], color=color, label=f"fold {i}")
    if refit:
        axes[0].plot(
            [h["epoch"] for h in refit],
            [h["train_loss"] for h in refit],
            color="black",
            lw=2,
            label="refit train",
        )
    # Log scale: the first epochs' loss would flatten everything after them.
    axes[0].set(xlabel="epoch", ylabel="loss (log scale)", title="Best trial: loss per fold")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7, ncol=2)
    if second:
        axes[1].set(xlabel="epoch", ylabel=second, title=f"Best trial: {second} per fold")
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def confusion(matrix: list[list[int]], classes: list) -> Figure:
    size = max(4.0, 0.45 * len(classes) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(np.asarray(matrix), display_labels=[str(c) for c in classes])
    display.plot(ax=ax, colorbar=False, cmap="Blues", values_format="d")
    ax.set_title("Test split: confusion matrix (rows: true)")
    fig.tight_layout()
    return fig


def predicted_vs_actual(predictions: pd.DataFrame) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 5))
    actual, predicted = predictions["target"], predictions["prediction"]
    ax.scatter(actual, predicted, s=10, alpha=0.6)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", lw=1)
    ax.set(xlabel="actual", ylabel="predicted", title="Test split: predicted vs actual")
    for axis in (ax.xaxis, ax.yaxis):  # few ticks: wide values (prices) ran together
        axis.set_major_locator(MaxNLocator(nbins=5))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def permutation_importance(result: dict[str, Any]) -> Figure | None:
    features = result.get("features") or []
    if not features:
        return None
    top = features[:TOP_FEATURES][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(top) + 1.5))
    ax.barh(
        [f["column"] for f in top],
        [f["mean"] for f in top],
        xerr=[f["std"] for f in top],
        color="tab:blue",
    )
    ax.set(
        xlabel=f"drop in test {result['scoring']} when the column is shuffled",
        title=f"Permutation importance (top {len(top)} columns)",
    )
    fig.tight_layout()
    return fig


def sweep_history(points: list[dict], metric: str) -> Figure | None:
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    spent = [p["epochs_spent"] for p in points]
    for status, color in STATUS_COLORS.items():
        chosen = [p for p in points if p["status"] == status and p["trial_best"] is not None]
        if not chosen:
            continue
        ax.scatter(
            [p["epochs_spent"] for p in chosen],
            [p["trial_best"] for p in chosen],
            color=color,
            s=18,
            label=f"trial best ({status})",
        )
    best = [p["best_so_far"] if p["best_so_far"] is not None else np.nan for p in points]
    ax.step(spent, best, where="post", color="black", label="best so far")
    values = [p["trial_best"] for p in points if p["trial_best"] is not None]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")  # losses of poor trials would squash the best ones
    ax.set(
        xlabel="epochs spent (cumulative, trials in start order)",
        ylabel=metric,
        title="Sweep history",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def epochs_per_trial(trials: pd.DataFrame, scheduler: dict[str, Any]) -> Figure | None:
    """The ASHA picture: how many epochs each trial got, with the scheduler's rungs."""
    if trials.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(6.5, 0.18 * len(trials) + 2), 4))
    colors = [STATUS_COLORS.get(s, "gray") for s in trials["status"]]
    ax.bar(trials["trial_index"].astype(str), trials["epochs"], color=colors)
    grace, factor = scheduler.get("grace_period"), scheduler.get("reduction_factor")
    if grace and factor:
        rung = grace
        while rung < scheduler["max_t"]:
            ax.axhline(rung, color="gray", lw=0.8, ls=":")
            rung *= factor
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATUS_COLORS.values()]
    ax.legend(handles, list(STATUS_COLORS), fontsize=7)
    ax.set(
        xlabel="trial (start order)",
        ylabel="epochs trained",
        title=f"Epochs each trial got ({scheduler['name']}; dotted: rungs)",
    )
    ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    return fig


def param_importances(
    importances: dict[str, float], budget: int | None, trials: int | None = None
) -> Figure | None:
    if not importances:
        return None
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(names) + 1.5))
    ax.barh(names, [importances[n] for n in names], color="tab:purple")
    ax.set(
        xlabel="fANOVA importance (sums to 1)",
        title=f"Hyperparameter importance ({trials} trials, value at epoch {budget})",
    )
    fig.tight_layout()
    return fig


def _optuna_figure(draw, study: optuna.Study) -> Figure | None:
    if len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
        axes = draw(study)
    # Optuna lays its figures out itself (colorbars); saving with bbox_inches="tight"
    # keeps the labels.
    return np.atleast_1d(axes).ravel()[0].get_figure()


def parallel_coordinates(study: optuna.Study) -> Figure | None:
    fig = _optuna_figure(optuna.visualization.matplotlib.plot_parallel_coordinate, study)
    if fig is None:
        return None
    # Optuna draws one axis per hyperparameter at a fixed width: their tick labels ran
    # into the next axis. Give each axis room, smaller ticks, and slanted names.
    columns = len(study.best_trial.params) + 1
    fig.set_size_inches(max(8.0, 1.9 * columns), 5.5)
    for ax in fig.axes:
        ax.tick_params(labelsize=7)
    for label in fig.axes[0].get_xticklabels():
        label.set(rotation=25, ha="right", fontsize=8)
    return fig


def slices(study: optuna.Study) -> Figure | None:
    return _optuna_figure(optuna.visualization.matplotlib.plot_slice, study)
