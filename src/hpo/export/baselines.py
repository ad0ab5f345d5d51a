"""Cheap strong baselines beside the tuned model, on the same split and preprocessing.

Two scikit-learn models per task: a gradient-boosted tree ensemble (HistGradientBoosting)
and a linear model (LogisticRegression for classes, Ridge for values). Each is scored

* on the sweep's own k folds: trained on each fold's train part with the arrays the trials
  trained on (the fold's preprocessing fitted on its train part only), scored on its
  validation part, so its CV figures stand beside the best trial's;
* on the test split: trained on every non-test row with preprocessing fitted on those
  rows (what the refit does), scored on the held-out rows that nothing was fit on.

Regression baselines learn the same target as the tuned model (the fold's
``data.target_transform``, then standardized); their predictions are brought back to the
target's units before they are scored. No row of the test split is seen before its
score. ``export.baselines: false`` skips them (for a sweep whose table is too large for a quick scikit-learn fit).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from hpo.data.prepare import FoldArrays, PreparedData, fit_fold
from hpo.data.target_transform import inverse
from hpo.errors import ConfigError
from hpo.export.metrics import classification_metrics, regression_metrics

# the test metrics a baseline is compared on, with the direction that is better
HEADLINE = {
    "classification": {"accuracy": "max", "f1_macro": "max", "log_loss": "min"},
    "regression": {"rmse": "min", "mae": "min", "r2": "max"},
}
KEPT_TEST = {
    "classification": (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "loss",
        "rows",
    ),
    "regression": ("rmse", "mae", "r2", "loss", "rows"),
}
MARGIN = 1e-9  # a tie is no win


def baseline_estimators(task: str, seed: int) -> dict[str, Any]:
    """The baselines of a task, by name, unfitted."""
    if task == "classification":
        return {
            # early stopping on 10% of the rows it is fit on (never a validation or test
            # row): on digits as strong as 100 rounds and quicker
            "hist_gradient_boosting": HistGradientBoostingClassifier(
                early_stopping=True, random_state=seed
            ),
            "logistic_regression": LogisticRegression(max_iter=2000),
        }
    return {
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            early_stopping=True, random_state=seed
        ),
        "ridge": Ridge(alpha=1.0),
    }


def baselines_enabled(cfg) -> bool:
    value = (cfg.get("export") or {}).get("baselines", True)
    if not isinstance(value, bool):
        raise ConfigError(f"config key `export.baselines`: must be true or false, got {value!r}.")
    return value


def _outputs(model: Any, X: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Probabilities over every class (a class absent from the train part gets 0), or
    values."""
    if task != "classification":
        return model.predict(X).astype(np.float64)
    proba = np.zeros((len(X), n_classes))
    proba[:, model.classes_] = model.predict_proba(X)
    # float32 inputs give float32 probabilities, whose rows sum to 1 only within 1e-7
    return proba / proba.sum(axis=1, keepdims=True)


def _values(arrays: FoldArrays, standardized: np.ndarray) -> np.ndarray:
    """The target's units from a model's output on standardized, transformed targets."""
    return inverse(arrays.target_transform, standardized * arrays.y_std + arrays.y_mean)


def _fold_scores(estimator: Any, fold: FoldArrays, task: str, classes: list | None) -> dict:
    """One fold's validation metrics under the sweep's names (``val_*``)."""
    model = clone(estimator).fit(fold.X_train, fold.y_train)
    out = _outputs(model, fold.X_val, task, len(classes or []))
    if task == "classification":
        found = classification_metrics(fold.y_val, out, classes)
        names = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
        return {"val_loss": found["log_loss"], **{f"val_{n}": found[n] for n in names}}
    y_val = _values(fold, fold.y_val)  # the folds hold standardized, transformed targets
    found = regression_metrics(y_val, _values(fold, out), fold.y_std, fold.target_transform)
    return {"val_loss": found["loss"], **{f"val_{n}": found[n] for n in ("rmse", "mae", "r2")}}


def _cross_validation(estimator: Any, prepared: PreparedData) -> dict[str, Any]:
    data = prepared.trial_data
    per_fold = [_fold_scores(estimator, f, data.task, data.classes) for f in data.folds]
    return {
        name: {
            "mean": float(np.mean([s[name] for s in per_fold])),
            "std": float(np.std([s[name] for s in per_fold])),
        }
        for name in per_fold[0]
    }


def _test_arrays(prepared: PreparedData, data_cfg: Any) -> FoldArrays:
    """Non-test rows (preprocessing fitted on them) and test rows, as the refit sees them."""
    return fit_fold(
        prepared.features,
        prepared.y,
        prepared.train_idx,
        prepared.test_idx,
        prepared.task,
        data_cfg,
        target_transform=prepared.target_transform.name,
    )


def _test_scores(
    estimator: Any, arrays: FoldArrays, task: str, classes: list | None, y_test: np.ndarray
) -> dict:
    """Test metrics against ``y_test`` (class indices, or values in the target's units)."""
    model = clone(estimator).fit(arrays.X_train, arrays.y_train)
    out = _outputs(model, arrays.X_val, task, len(classes or []))
    if task == "classification":
        found = classification_metrics(y_test, out, classes)
    else:
        values = _values(arrays, out)
        found = regression_metrics(y_test, values, arrays.y_std, arrays.target_transform)
    return {k: found[k] for k in KEPT_TEST[task] if k in found}


def fit_baselines(prepared: PreparedData, cfg: Any) -> dict[str, Any] | None:
    """Fit and score every baseline; the record export.json keeps (None: switched off).

    Args:
        prepared: the sweep's prepared data, with its folds (``trial_data``).
        cfg: the run's config (``seed``, ``data``, ``export.baselines``).
    """
    if not baselines_enabled(cfg) or prepared.trial_data is None:
        return None
    # as many threads as a trial gets: OpenMP's default (every core) on a busy machine
    # made one HistGradientBoosting fit 80x slower
    with threadpool_limits(limits=max(1, int(cfg.resources.cpus_per_trial))):
        return _fit_all(prepared, cfg)


def _fit_all(prepared: PreparedData, cfg: Any) -> dict[str, Any]:
    task, classes = prepared.task, prepared.classes
    arrays = _test_arrays(prepared, cfg.data)
    models = []
    for name, estimator in baseline_estimators(task, int(cfg.seed)).items():
        started = time.perf_counter()
        cv = _cross_validation(estimator, prepared)
        cv_seconds = time.perf_counter() - started
        started = time.perf_counter()
        test = _test_scores(estimator, arrays, task, classes, prepared.y[prepared.test_idx])
        models.append(
            {
                "name": name,
                "estimator": repr(estimator),
                "cv": cv,
                "test": test,
                "cv_seconds": cv_seconds,
                "fit_seconds": time.perf_counter() - started,  # one fit + test predictions
            }
        )
    return {
        "how": f"scikit-learn on the sweep's {len(prepared.trial_data.folds)} folds (each "
        "fold's preprocessing fitted on its train part) and on the test rows (trained on "
        "every non-test row, preprocessing fitted on those rows, as the refit)",
        "models": models,
    }


def _better(a: float, b: float, direction: str) -> bool:
    return a < b - MARGIN if direction == "min" else a > b + MARGIN


def baseline_wins(task: str, tuned: dict[str, Any], baseline: dict[str, Any]) -> dict[str, tuple]:
    """The headline test metrics on which ``baseline`` beats the tuned model:
    name -> (baseline's value, tuned model's value)."""
    wins = {}
    for name, direction in HEADLINE[task].items():
        mine, theirs = baseline["test"].get(name), tuned.get(name)
        if mine is None or theirs is None:
            continue
        if _better(float(mine), float(theirs), direction):
            wins[name] = (float(mine), float(theirs))
    return wins


def baseline_warnings(
    task: str, tuned: dict[str, Any], baselines: dict[str, Any] | None
) -> list[dict[str, str]]:
    """One warning per baseline that beats the tuned model on a headline test metric."""
    if not baselines:
        return []
    warnings = []
    for model in baselines["models"]:
        wins = baseline_wins(task, tuned, model)
        if not wins:
            continue
        listed = ", ".join(f"{n} {mine:.4g} vs {theirs:.4g}" for n, (mine, theirs) in wins.items())
        warnings.append(
            {
                "kind": "a baseline wins",
                "message": f"baseline {model['name']} beats the tuned model on the test split "
                f"({listed}; same rows, same preprocessing, fit in {model['fit_seconds']:.2g} "
                "s): ship the baseline, or widen the search space or its budget.",
            }
        )
    return warnings


def comparison(
    task: str,
    best: dict[str, Any],
    tuned_test: dict[str, Any],
    export: dict[str, Any],
) -> dict[str, Any] | None:
    """The report's side-by-side table: the tuned model's row first, then each baseline's,
    with the sweep metric's CV mean, the test metrics, the time and what each wins on."""
    baselines = export.get("baselines")
    if not baselines:
        return None
    metric, sweep = best["metric"], export.get("sweep_wall_s")
    names = [n for n in KEPT_TEST[task] if n not in ("rows", "loss")]
    rows = [
        {
            "model": f"tuned ({export['model'].get('strategy', 'refit')})",
            "cv": best.get("cv_mean"),
            "test": {n: tuned_test.get(n) for n in names},
            "fit_seconds": export.get("train_seconds"),
            "sweep_seconds": export.get("sweep_wall_s"),
            "wins": [],
        }
    ]
    for model in baselines["models"]:
        rows.append(
            {
                "model": model["name"],
                "estimator": model["estimator"],
                "cv": (model["cv"].get(metric) or {}).get("mean"),
                "cv_std": (model["cv"].get(metric) or {}).get("std"),
                "test": {n: model["test"].get(n) for n in names},
                "fit_seconds": model["fit_seconds"],
                "cv_seconds": model["cv_seconds"],
                "wins": sorted(baseline_wins(task, tuned_test, model)),
            }
        )
    return {
        "how": baselines["how"],
        "cv_metric": metric,
        "metrics": names,
        "fit_seconds_means": "tuned: the export's replay of the best trial plus its refit"
        + (f" (the sweep itself took {sweep:.0f} s)" if sweep is not None else "")
        + "; baselines: one fit on the non-test rows",
        "rows": rows,
    }
