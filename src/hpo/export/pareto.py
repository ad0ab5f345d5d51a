"""The Pareto front of a multi-objective sweep and the one point the export ships.

Each trial that did not fail is one point: its row of trials.parquet at its best epoch
by the first objective (the row ``select_best`` ranks it by), holding every objective's
value. A point is on the front when no other point is at least as good on every
objective and better on one. The export ships one point, chosen by
``export.pareto_pick``:

* ``knee`` (default): the point closest (Euclidean) to the front's ideal point, each
  objective scaled to [0, 1] over the front (0: the front's best value, 1: its worst);
  the balanced compromise;
* ``first_objective``: the best on the first objective (ties: the next objectives);
* ``weights``: the smallest ``export.pareto_weights``-weighted sum of those scaled
  values (one non-negative weight per objective: [1, 0] is ``first_objective`` up to
  ties).

Ties go to the earliest trial. Pure pandas/numpy; hpo.sweep.results.choose_best uses it
at the end of the sweep (best_trial.json), the report ``front_table`` (best/pareto.csv).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpo.config.objectives import objectives
from hpo.errors import ConfigError, HPOError

PICK_RULES = ("knee", "first_objective", "weights")
PARETO_FILE = "pareto.csv"


def pick_options(cfg: Any) -> tuple[str, list[float] | None]:
    """``(export.pareto_pick, export.pareto_weights)``, checked (ConfigError naming the key)."""
    export = cfg.get("export") or {}
    rule = str(export.get("pareto_pick", "knee"))
    weights = export.get("pareto_weights")
    if rule not in PICK_RULES:
        raise ConfigError(
            f"config key `export.pareto_pick`: must be one of {', '.join(PICK_RULES)}, got "
            f"{rule!r}."
        )
    n = len(objectives(cfg))
    if rule == "weights" and weights is None:
        raise ConfigError(
            "config key `export.pareto_weights`: export.pareto_pick=weights needs one weight "
            f"per objective, e.g. export.pareto_weights=[{','.join(['1'] * n)}]."
        )
    if weights is not None:
        weights = [float(w) for w in weights]
        if len(weights) != n or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(
                f"config key `export.pareto_weights`: needs {n} non-negative weights (one per "
                f"objective, not all 0), got {weights}."
            )
    return rule, weights


def trial_points(frame: pd.DataFrame, objs: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per trial that did not fail, at its best epoch by the first objective,
    every objective finite; in trial order."""
    names = [m for m, _ in objs]
    if frame.empty or any(n not in frame.columns for n in names):
        return pd.DataFrame(columns=["trial_id", "trial_index", "status", "epoch", *names])
    usable = frame[frame["status"] != "failed"].copy()
    for name in names:
        usable[name] = pd.to_numeric(usable[name], errors="coerce")
    usable = usable[np.isfinite(usable[names].to_numpy(dtype=float)).all(axis=1)]
    if usable.empty:
        return pd.DataFrame(columns=["trial_id", "trial_index", "status", "epoch", *names])
    first, mode = objs[0]
    group = usable.groupby("trial_id")[first]
    rows = usable.loc[group.idxmax() if mode == "max" else group.idxmin()]
    return rows.sort_values(["trial_index", "epoch"]).reset_index(drop=True)


def _costs(points: pd.DataFrame, objs: list[tuple[str, str]]) -> np.ndarray:
    """The objectives as costs (smaller is better): max objectives negated."""
    columns = [points[m].to_numpy(dtype=float) * (-1.0 if d == "max" else 1.0) for m, d in objs]
    return np.stack(columns, axis=1) if columns else np.empty((0, 0))


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """True for the rows of ``costs`` (smaller is better) that no other row dominates."""
    n = len(costs)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = (costs <= costs[i]).all(axis=1)
        better = (costs < costs[i]).any(axis=1)
        mask[i] = not (no_worse & better).any()
    return mask


def pick(
    costs: np.ndarray, rule: str, weights: list[float] | None = None
) -> tuple[int, np.ndarray]:
    """The index (into the front's ``costs``) that ``rule`` picks, and every front point's
    score under it (smaller is better; for ``first_objective`` the first cost)."""
    low, high = costs.min(axis=0), costs.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (costs - low) / span
    if rule == "first_objective":
        order = np.lexsort(costs.T[::-1])  # first objective, then the next ones
        return int(order[0]), costs[:, 0]
    if rule == "weights":
        score = scaled @ np.asarray(weights, dtype=float)
    else:
        score = np.sqrt((scaled**2).sum(axis=1))
    return int(np.argmin(score)), score  # argmin: the first (earliest) of equal scores


def pareto_front(
    frame: pd.DataFrame, cfg: Any
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``(points, front, choice)``: every trial's point, the front (with its ``score``
    under the rule and ``chosen``), and what was chosen and why."""
    objs = objectives(cfg)
    rule, weights = pick_options(cfg)
    points = trial_points(frame, objs)
    if points.empty:
        raise HPOError(
            "no trial that did not fail reported every objective "
            f"({', '.join(m for m, _ in objs)}), so there is no Pareto front; see "
            "trials.parquet's `error` column."
        )
    costs = _costs(points, objs)
    mask = pareto_mask(costs)
    front = points[mask].reset_index(drop=True)
    index, score = pick(costs[mask], rule, weights)
    front["score"] = score
    front["chosen"] = np.arange(len(front)) == index
    chosen = front.iloc[index]
    values = {m: float(chosen[m]) for m, _ in objs}
    shown = ", ".join(f"{m} {v:.4g}" for m, v in values.items())
    reason = {
        "knee": "the knee: closest to the front's ideal point with each objective scaled "
        "to [0, 1] over the front",
        "first_objective": f"the best {objs[0][0]} on the front",
        "weights": f"the smallest weighted sum {weights} of the objectives scaled to [0, 1]",
    }[rule]
    choice = {
        "objectives": [{"metric": m, "mode": d} for m, d in objs],
        "rule": rule,
        "weights": weights,
        "trial_id": str(chosen["trial_id"]),
        "epoch": int(chosen["epoch"]),
        "values": values,
        "front_size": int(len(front)),
        "trials": int(len(points)),
        "why": f"{chosen['trial_id']} ({shown}) of {len(front)} Pareto-optimal trials "
        f"(of {len(points)}): export.pareto_pick={rule}, {reason}",
    }
    return points, front, choice


def front_table(frame: pd.DataFrame, cfg: Any, space_keys: list[str]) -> pd.DataFrame:
    """best/pareto.csv: the front's trials with their objectives, hyperparameters, the
    rule's score and the chosen one."""
    _, front, _ = pareto_front(frame, cfg)
    params = [k for k in space_keys if k in frame.columns]
    names = [m for m, _ in objectives(cfg)]
    lead = ["trial_id", "trial_index", "status", "epoch", *names, "score", "chosen"]
    return front[lead + [p for p in params if p not in lead]]
