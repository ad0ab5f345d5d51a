"""From the recorded rows to trials.parquet and best_trial.json. Pure pandas; no Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpo.config.objectives import objectives
from hpo.errors import HPOError
from hpo.export.pareto import pareto_front
from hpo.rundir import BEST_TRIAL, ROWS, TRIALS

TRIALS_FILE = TRIALS
BEST_FILE = BEST_TRIAL
ROWS_FILE = ROWS


def load_rows(path: Path) -> pd.DataFrame:
    """One row per reported epoch of every trial, plus a row for trials that never reported.

    Columns: trial_id, trial_index, status, error, epoch, one column per hyperparameter
    (its dotted key), then the metrics.
    """
    results, ends, params, index = [], {}, {}, {}
    if not Path(path).exists():
        return pd.DataFrame()
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        event = row.pop("event")
        params[row["trial_id"]] = row.pop("params", {}) or params.get(row["trial_id"], {})
        index[row["trial_id"]] = row.pop("trial_index", -1)
        if event == "result":
            results.append(row)
        elif event == "end":
            ends[row["trial_id"]] = row
    frame = pd.DataFrame(results)
    # A trial that ran again after a resume or retry reports some epochs twice: keep the last.
    if not frame.empty:
        frame = frame.drop_duplicates(subset=["trial_id", "epoch"], keep="last")
    reported = set(frame["trial_id"]) if not frame.empty else set()
    silent = [{"trial_id": tid, "epoch": 0} for tid, end in ends.items() if tid not in reported]
    if silent:
        frame = pd.concat([frame, pd.DataFrame(silent)], ignore_index=True)
    if frame.empty:
        return frame
    frame["status"] = [ends.get(t, {}).get("status", "running") for t in frame["trial_id"]]
    frame["error"] = [ends.get(t, {}).get("error") for t in frame["trial_id"]]
    frame["trial_index"] = [index.get(t, -1) for t in frame["trial_id"]]
    keys = sorted({k for p in params.values() for k in p})
    for key in keys:
        frame[key] = [params.get(t, {}).get(key) for t in frame["trial_id"]]
    lead = ["trial_id", "trial_index", "status", "error", "epoch", *keys]
    rest = [c for c in frame.columns if c not in lead]
    frame = frame[lead + rest].sort_values(["trial_index", "epoch"]).reset_index(drop=True)
    frame["epoch"] = frame["epoch"].astype("int64")
    return frame


def write_trials(frame: pd.DataFrame, run_dir: Path) -> Path:
    path = Path(run_dir) / TRIALS_FILE
    frame.to_parquet(path, index=False)
    return path


def param_keys(frame: pd.DataFrame, space_keys: list[str]) -> list[str]:
    return [k for k in space_keys if k in frame.columns]


def select_best(
    frame: pd.DataFrame, metric: str, mode: str, space_keys: list[str]
) -> dict[str, Any]:
    """The best trial by its fold-mean ``metric`` at its best epoch; a trial that failed
    (raised, or diverged: hpo.train.divergence) is never the best, whatever its early
    epochs scored."""
    if frame.empty or metric not in frame.columns:
        raise HPOError(
            "no trial reported a result, so there is no best trial; see trials.parquet's "
            "`error` column for why the trials failed."
        )
    finite = frame[
        np.isfinite(pd.to_numeric(frame[metric], errors="coerce")) & (frame["status"] != "failed")
    ]
    if finite.empty:
        raise HPOError(
            f"no trial that did not fail reported a finite `{metric}`; see trials.parquet's "
            "`error` column."
        )
    idx = finite[metric].idxmin() if mode == "min" else finite[metric].idxmax()
    row = finite.loc[idx]
    fold_key = f"fold_{metric}"
    # fold-mean metrics: hpo's names, and any other name reported with its std (a user's
    # LightningModule's own metrics)
    means = {c for c in frame.columns if f"{c}_std" in frame.columns}
    metrics = {
        c: _scalar(row[c])
        for c in frame.columns
        if (
            c.startswith(("val_", "train_"))
            or c in means
            or (c.endswith("_std") and c[: -len("_std")] in means)
        )
        and not isinstance(row[c], (list, np.ndarray))
    }
    return {
        "trial_id": row["trial_id"],
        "trial_index": int(row["trial_index"]),
        "status": row["status"],
        "params": {k: _scalar(row[k]) for k in param_keys(frame, space_keys)},
        "epoch": int(row["epoch"]),
        "metric": metric,
        "mode": mode,
        "cv_mean": float(row[metric]),
        "cv_std": _scalar(row.get(f"{metric}_std")),
        "fold_scores": _list(row.get(fold_key)),
        "fold_best_epochs": _list(row.get("fold_best_epochs")),
        "metrics": metrics,
    }


def choose_best(frame: pd.DataFrame, cfg: Any, space_keys: list[str]) -> dict[str, Any]:
    """best_trial.json's content: ``select_best`` for one objective; for several, the
    Pareto point ``export.pareto_pick`` chooses, with ``pareto`` saying which and why."""
    if len(objectives(cfg)) == 1:
        return select_best(frame, cfg.metric, cfg.mode, space_keys)
    _, _, choice = pareto_front(frame, cfg)
    rows = frame[frame["trial_id"] == choice["trial_id"]]
    best = select_best(rows, cfg.metric, cfg.mode, space_keys)
    best["pareto"] = choice
    return best


def write_best(best: dict[str, Any], run_dir: Path) -> Path:
    path = Path(run_dir) / BEST_FILE
    path.write_text(json.dumps(best, indent=2, default=_scalar) + "\n")
    return path


def count_statuses(frame: pd.DataFrame) -> dict[str, int]:
    if frame.empty:
        return {"completed": 0, "stopped": 0, "failed": 0}
    per_trial = frame.groupby("trial_id")["status"].last()
    return {s: int((per_trial == s).sum()) for s in ("completed", "stopped", "failed", "running")}


def _scalar(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _list(value: Any) -> list | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return [_scalar(v) for v in list(value)]
