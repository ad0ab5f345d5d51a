"""What the sweep did, read back from trials.parquet: counts, epochs spent, the history of
the best value, the epochs ASHA gave each trial, and hyperparameter importances.

The Optuna study is not kept in the run directory, so importances come from an in-memory
study rebuilt from trials.parquet. Optuna's evaluators read COMPLETE trials only, and
with ASHA most trials are stopped early, so every trial that reported enters as
COMPLETE with its value at the *common budget*: the largest epoch every such trial
reached (ASHA's first rung), so trials are compared at equal training, not mixed
fidelities. Every epoch's value is kept as an intermediate value.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig

from hpo.space import build_search_space

MIN_TRIALS_FOR_IMPORTANCE = 3


def _better(mode: str):
    return np.fmin if mode == "min" else np.fmax


def trial_table(frame: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """One row per trial, in start order: status, epochs run, best value, fold-epochs."""
    rows = []
    for trial_id, group in frame.sort_values(["trial_index", "epoch"]).groupby(
        "trial_id", sort=False
    ):
        reported = group[group["epoch"] > 0]
        values = pd.to_numeric(reported.get(metric, pd.Series(dtype=float)), errors="coerce")
        values = values[np.isfinite(values)]
        best = None
        if len(values):
            best = float(values.min() if mode == "min" else values.max())
        active = pd.to_numeric(reported.get("folds_active"), errors="coerce")
        fold_epochs = None
        if active is not None and len(reported):
            folds = len(reported["fold_val_loss"].iloc[0]) if "fold_val_loss" in reported else 0
            # Folds trained at epoch e = folds still active after epoch e-1.
            fold_epochs = int(folds + active.iloc[:-1].fillna(0).sum()) if folds else None
        rows.append(
            {
                "trial_id": trial_id,
                "trial_index": int(group["trial_index"].iloc[0]),
                "status": str(group["status"].iloc[-1]),
                "epochs": int(reported["epoch"].max()) if len(reported) else 0,
                "fold_epochs": fold_epochs,
                "best_value": best,
                "compute_s": _max_or_none(reported.get("time_total_s")),
            }
        )
    return pd.DataFrame(rows).sort_values("trial_index").reset_index(drop=True)


def _max_or_none(series: pd.Series | None) -> float | None:
    if series is None:
        return None
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.max()) if len(values) else None


def sweep_summary(
    frame: pd.DataFrame, cfg: DictConfig, wall_s: float | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The report's sweep section and the per-trial table it was computed from."""
    trials = trial_table(frame, cfg.metric, cfg.mode)
    counts = trials["status"].value_counts()
    fold_epochs = trials["fold_epochs"].dropna()
    scheduler = {"name": cfg.scheduler.name}
    if cfg.scheduler.name in ("asha", "hyperband"):
        scheduler.update(
            max_t=int(cfg.scheduler.max_t), reduction_factor=int(cfg.scheduler.reduction_factor)
        )
    if cfg.scheduler.name == "asha":
        scheduler["grace_period"] = int(cfg.scheduler.grace_period)
    compute = trials["compute_s"].dropna()
    summary = {
        "trials": int(len(trials)),
        "completed": int(counts.get("completed", 0)),
        "stopped_by_scheduler": int(counts.get("stopped", 0)),
        "failed": int(counts.get("failed", 0)),
        "epochs_spent": int(trials["epochs"].sum()),
        "epochs_budget": int(cfg.budget.num_samples) * int(cfg.trainer.max_epochs),
        "fold_epochs_spent": int(fold_epochs.sum()) if len(fold_epochs) else None,
        "wall_s": wall_s,
        "trial_compute_s": float(compute.sum()) if len(compute) else None,
        "searcher": {"name": cfg.searcher.name, "bridge": cfg.searcher.get("bridge", "fidelity")},
        "scheduler": scheduler,
        "metric": cfg.metric,
        "mode": cfg.mode,
        "cv_folds": int(cfg.cv.folds),
    }
    return summary, trials


def history(trials: pd.DataFrame, mode: str) -> list[dict[str, Any]]:
    """Best value so far against cumulative epochs spent, trials in start order."""
    points, spent, best = [], 0, math.nan
    for row in trials.itertuples():
        spent += int(row.epochs)
        if row.best_value is not None and not pd.isna(row.best_value):
            best = float(_better(mode)(best, row.best_value))
        points.append(
            {
                "trial_id": row.trial_id,
                "epochs_spent": spent,
                "trial_best": None if pd.isna(row.best_value) else float(row.best_value),
                "best_so_far": None if math.isnan(best) else best,
                "status": row.status,
            }
        )
    return points


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def rebuild_study(frame: pd.DataFrame, cfg: DictConfig) -> tuple[optuna.Study, int | None]:
    """An in-memory Optuna study of every trial that reported, valued at the common budget.

    Returns the study and that budget (epochs), None when no trial reported.
    """
    space, _ = build_search_space(cfg.search_space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if cfg.mode == "min" else "maximize")
    reported = frame[(frame["epoch"] > 0) & (frame["status"] != "failed")]
    if reported.empty or cfg.metric not in reported:
        return study, None
    budget = int(reported.groupby("trial_id")["epoch"].max().min())
    trials = []
    for _, group in reported.sort_values(["trial_index", "epoch"]).groupby("trial_id", sort=False):
        values = dict(zip(group["epoch"].astype(int), group[cfg.metric].astype(float)))
        value = values.get(budget)
        if value is None or not math.isfinite(value):
            continue
        first = group.iloc[0]
        params = {k: _plain(first[k]) for k in space if k in group}
        for key, dist in space.items():
            if isinstance(dist, optuna.distributions.IntDistribution) and key in params:
                params[key] = int(params[key])
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: space[k] for k in params},
                value=value,
                intermediate_values={e: v for e, v in values.items() if math.isfinite(v)},
                user_attrs={"trial_id": str(first["trial_id"]), "status": str(first["status"])},
            )
        )
    study.add_trials(trials)
    return study, budget


def param_importances(study: optuna.Study, seed: int) -> tuple[dict[str, float], str | None]:
    """fANOVA importances (normalized to sum 1), or a note saying why there are none."""
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, f"importances need at least {MIN_TRIALS_FOR_IMPORTANCE} trials"
    if len({t.value for t in complete}) < 2:
        return {}, "every trial has the same value at the common budget"
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:
        return {}, f"fANOVA failed: {exc}"
    return {k: float(v) for k, v in found.items()}, None


ROUGH_TRIALS = 20  # fewer trials than this make fANOVA's forest a rough guide


def importance_basis(study: optuna.Study, budget: int | None, max_epochs: int) -> dict[str, Any]:
    """How many trials and which budget the importances rest on, and a caveat when that
    is thin (few trials, or a budget well short of max_epochs)."""
    trials = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    caveat = None
    if budget is not None and (trials < ROUGH_TRIALS or budget < max_epochs / 3):
        caveat = (
            f"rests on {trials} trials valued at epoch {budget} of {max_epochs} (the epoch "
            "every trial reached): a rough ranking of what mattered early, not a measurement"
        )
    return {"trials": trials, "budget_epochs": budget, "max_epochs": max_epochs, "caveat": caveat}
