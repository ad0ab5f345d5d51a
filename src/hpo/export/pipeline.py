"""Export the best trial of a finished sweep into RUN_DIR/best, then write its report.

Order: train (hpo.export.refit) -> the cleaning spec and the preprocessing to JSON, the
preprocessing checked against the features the model was trained on -> ONNX, checked
against torch on the test split -> load the artifact the way a deployment does and
predict the test split with it (the report's test metrics come from those predictions)
-> permutation importance and inference figures -> export.json -> report.json /
report.html (hpo.export.report), all into ``best.partial``, renamed to ``best/`` when
complete (hpo.export.staging). The test rows here are the cleaned table's, so they
enter the loaded model after its cleaning step (``predict_cleaned``); `hpo predict` on
the file's raw test lines cleans them into the same rows and gives the same metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from sklearn.inspection import permutation_importance
from sklearn.metrics import accuracy_score, r2_score

import hpo
from hpo.config import load_run_config
from hpo.data.files import csv_delimiter, file_encoding
from hpo.data.prepare import PreparedData, prepare_data
from hpo.data.target_transform import forward
from hpo.errors import HPOError
from hpo.export.baselines import fit_baselines
from hpo.export.benchmark import measure_inference
from hpo.export.calibration import calibrate, test_figures
from hpo.export.metrics import class_indices, evaluate_predictions
from hpo.export.onnx_model import OUTPUT_NAMES, ExportGraph, check_onnx, export_onnx, input_names
from hpo.export.predictor import (
    MANIFEST_FILE,
    MODEL_FORMAT,
    ONNX_FILE,
    PREPROCESSING_FILE,
    ExportedModel,
    load_model,
)
from hpo.export.preprocessing import column_kinds, export_preprocessor
from hpo.export.refit import TrainedModels, best_trial_config, export_strategy, train_models
from hpo.export.report import (
    EXPORT_FILE,
    ROW_COLUMN,
    TARGET_COLUMN,
    TEST_PREDICTIONS_FILE,
    write_report,
)
from hpo.export.staging import begin_staging, publish
from hpo.export.transform import PREPROCESSING_FORMAT, category_key, transform_rows
from hpo.rundir import BestFiles, RunDirectory

CONFIG_FILE = BestFiles.CONFIG
PERMUTATION_REPEATS = 5
PERMUTATION_KEEP = 50  # columns kept in the report, most important first
PERMUTATION_MAX_ROWS = 5000  # a seeded sample of larger test splits keeps the export quick
PREPROCESSING_TOLERANCE = 1e-6


@dataclass
class ExportResult:
    best_dir: Path
    report: dict[str, Any]
    html_path: Path
    export_seconds: float


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_preprocessing(
    specs: list[dict[str, Any]], trained: TrainedModels, rest: pd.DataFrame
) -> dict[str, Any]:
    """The exported preprocessing, applied to each model's training rows, against the
    arrays the model was trained on."""
    worst = 0.0
    for spec, arrays in zip(specs, trained.training):
        exported = transform_rows(rest.iloc[arrays.train_rows], spec)
        if exported.shape != arrays.X_train.shape:
            return {"passed": False, "max_abs_diff": None, "rows": int(len(arrays.train_rows))}
        worst = max(worst, float(np.abs(exported - arrays.X_train).max(initial=0.0)))
    rows = int(sum(len(a.train_rows) for a in trained.training))
    return {"passed": worst <= PREPROCESSING_TOLERANCE, "max_abs_diff": worst, "rows": rows}


class _RowsModel:
    """The exported model as scikit-learn's permutation_importance sees an estimator
    (it asks for ``fit``; nothing is fit). Scores cleaned rows, by raw column, through
    the exported preprocessing and ONNX model."""

    def __init__(self, model: ExportedModel) -> None:
        self.model = model

    def fit(self, X: Any, y: Any) -> _RowsModel:
        return self

    def score(self, X: pd.DataFrame, y: np.ndarray) -> float:
        outputs = self.model.run(self.model.inputs(X))
        if self.model.task == "classification":  # y: class indices
            return float(accuracy_score(y, outputs.argmax(axis=1)))
        return float(r2_score(y, outputs))


def _permutation_importance(
    model: ExportedModel, rows: pd.DataFrame, target: pd.Series, repeats: int, seed: int
) -> dict[str, Any]:
    if len(rows) > PERMUTATION_MAX_ROWS:
        sample = np.random.default_rng(seed).choice(len(rows), PERMUTATION_MAX_ROWS, replace=False)
        rows, target = rows.iloc[sample], target.iloc[sample]
    truth = target.to_numpy()
    if model.task == "classification":
        truth = class_indices(truth, model.classes)
    found = permutation_importance(
        _RowsModel(model),
        rows[model.columns],
        truth,
        scoring=lambda estimator, X, y: estimator.score(X, y),
        n_repeats=repeats,
        random_state=seed,
    )
    order = np.argsort(-found.importances_mean, kind="stable")
    return {
        "scoring": "accuracy" if model.task == "classification" else "r2",
        "repeats": repeats,
        "rows": int(len(rows)),
        "features": [
            {
                "column": model.columns[i],
                "mean": float(found.importances_mean[i]),
                "std": float(found.importances_std[i]),
            }
            for i in order[:PERMUTATION_KEEP]
        ],
    }


def _manifest(cfg, best: dict, prepared: PreparedData, trained: TrainedModels) -> dict:
    classes = [_plain(c) for c in prepared.classes] if prepared.classes else None
    return {
        "format": MODEL_FORMAT,
        "task": prepared.task,
        "target": str(prepared.table.target.name),
        "classes": classes,
        "inputs": input_names(len(trained.modules)),
        "output": OUTPUT_NAMES[prepared.task],
        "strategy": trained.strategy,
        # val_loss of a regression is the MSE of targets standardized by this std (of the
        # transformed target: target_transform, which model.onnx undoes itself)
        "target_scale": _loss_scale(prepared) if prepared.task == "regression" else None,
        "target_transform": target_transform_record(prepared),
        # how `hpo predict` reads a CSV; missing-value markers are in the cleaning spec
        "delimiter": csv_delimiter(cfg.data),
        "file_encoding": file_encoding(cfg.data),
        "trial_id": best["trial_id"],
        "model_target": str(cfg.model["_target_"]),
        "created_by": f"hpo {hpo.__version__}",
    }


def _loss_scale(prepared: PreparedData) -> float:
    y_rest = prepared.y[prepared.train_idx]
    return float(np.std(forward(prepared.target_transform.name, y_rest))) or 1.0


def target_transform_record(prepared: PreparedData) -> dict[str, Any] | None:
    """What model.json, preprocessing.json and the report say about the target's transform
    (None for classification)."""
    if prepared.task != "regression":
        return None
    return {
        **prepared.target_transform.record(),
        "inverted": "inside model.onnx (after the standardization, before the clip): "
        "predictions are in the target's own units",
    }


def prediction_range(cfg, prepared: PreparedData) -> list[float] | None:
    """``export.clip_predictions`` (default true): a regression model predicts within the
    non-test rows' target range [min, max], so that a price is never negative and never
    beyond what training saw. None for classification or when switched off."""
    if prepared.task != "regression":
        return None
    if not bool((cfg.get("export") or {}).get("clip_predictions", True)):
        return None
    y_rest = prepared.y[prepared.train_idx]
    return [float(np.min(y_rest)), float(np.max(y_rest))]


def test_row_numbers(prepared: PreparedData) -> np.ndarray:
    """Each test row's row number in the input (0 = the first data row of the file), to
    join test_predictions.parquet back to it."""
    positions = prepared.positions
    if positions is None:
        positions = np.arange(len(prepared.features))
    return np.asarray(positions)[prepared.test_idx].astype(np.int64)


def _read_best(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    run = RunDirectory(Path(run_dir))
    if not run.best_trial.is_file():
        raise HPOError(
            f"{run.best_trial} does not exist: the sweep in {run_dir} found no best trial to "
            "export."
        )
    return run.read_best_trial(), run.read_trials()


def export_best(
    run_dir: str | Path,
    prepared: PreparedData | None = None,
    sweep_wall_s: float | None = None,
) -> ExportResult:
    """Export the best trial of the sweep in ``run_dir`` to ``run_dir/best`` with its report.

    Args:
        run_dir: a finished sweep's run directory.
        prepared: the sweep's prepared data (loaded again from the config if None).
        sweep_wall_s: the sweep's wall time, for the report.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir).resolve()
    cfg = load_run_config(run_dir)
    best, frame = _read_best(run_dir)
    best_cfg = best_trial_config(cfg, best["params"])
    export_strategy(best_cfg)  # a bad export.strategy fails before any training
    prepared = prepared if prepared is not None else prepare_data(cfg)
    last_epoch = int(frame.loc[frame["trial_id"] == best["trial_id"], "epoch"].max())
    train_started = time.perf_counter()
    trained = train_models(prepared, best_cfg, best, last_epoch)
    train_seconds = time.perf_counter() - train_started
    calibration = (
        calibrate(cfg, trained.fold_modules, prepared.trial_data.folds)
        if prepared.task == "classification"
        else None
    )
    baselines = fit_baselines(prepared, cfg)

    best_dir = begin_staging(run_dir)  # renamed to RUN_DIR/best when complete
    features = prepared.features
    rest = features.iloc[prepared.train_idx].reset_index(drop=True)
    test_rows = features.iloc[prepared.test_idx].reset_index(drop=True)
    names = input_names(len(trained.modules))
    specs = [
        export_preprocessor(p, n, layout)
        for p, n, layout in zip(trained.preprocessors, names, trained.layouts)
    ]
    preprocessing_check = _check_preprocessing(specs, trained, rest)
    document = {
        "format": PREPROCESSING_FORMAT,
        "cleaning": prepared.cleaning,  # raw rows -> the cleaned columns below
        "columns": column_kinds(features),
        "inputs": specs,
        # what the model learned for the target; the graph undoes it, apply nothing
        "target_transform": target_transform_record(prepared),
    }
    (best_dir / PREPROCESSING_FILE).write_text(json.dumps(document, indent=1) + "\n")

    clip = prediction_range(cfg, prepared)
    temperature = calibration["temperature"] if calibration else 1.0
    mixed = calibration["uniform_weight"] if calibration else 0.0
    y_rest = prepared.y[prepared.train_idx]
    graph = ExportGraph(
        trained.modules,
        prepared.task,
        trained.y_means,
        trained.y_stds,
        clip,
        temperature,
        mixed,
        target_transform=prepared.target_transform.name,
        target_scale=(float(np.std(y_rest)) or 1.0) if prepared.task == "regression" else None,
    )
    test_inputs = [transform_rows(test_rows, spec) for spec in specs]
    export_onnx(graph, test_inputs, best_dir / ONNX_FILE, str(cfg.model["_target_"]))
    manifest = {**_manifest(cfg, best, prepared, trained), "prediction_range": clip}
    (best_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    OmegaConf.save(best_cfg, best_dir / CONFIG_FILE, resolve=True)

    model = load_model(best_dir)
    onnx_check = check_onnx(graph, model.session, test_inputs)
    target = prepared.table.target
    test_target = target.iloc[prepared.test_idx].reset_index(drop=True)
    predictions = model.predict_cleaned(test_rows)
    predictions.insert(0, TARGET_COLUMN, test_target.to_numpy())
    predictions.insert(0, ROW_COLUMN, test_row_numbers(prepared))
    if calibration:
        calibration["test"] = test_figures(graph, test_inputs, prepared.y[prepared.test_idx])
    predictions.to_parquet(best_dir / TEST_PREDICTIONS_FILE, index=False)
    train_target = target.iloc[prepared.train_idx].reset_index(drop=True)
    train_metrics = evaluate_predictions(manifest, train_target, model.predict_cleaned(rest))
    repeats = int((cfg.get("export") or {}).get("permutation_repeats", PERMUTATION_REPEATS))
    permutation = _permutation_importance(model, test_rows, test_target, repeats, int(cfg.seed))
    inference = measure_inference(best_dir, graph, test_rows, int(cfg.seed))

    model_info = dict(trained.info)
    replay = model_info["replay"]
    replay["cv_mean"] = (replay.pop("cv_at_best_epoch") or {}).get(best["metric"])
    replay["sweep_cv_mean"] = best["cv_mean"]
    export_seconds = time.perf_counter() - started
    artifacts = [ONNX_FILE, PREPROCESSING_FILE, MANIFEST_FILE, CONFIG_FILE, TEST_PREDICTIONS_FILE]
    record = {
        "data": {
            "name": str(cfg.data.name),
            "target": manifest["target"],
            "columns": len(features.columns),
            "rows_non_test": int(len(prepared.train_idx)),
            "rows_test": int(len(prepared.test_idx)),
        },
        "model": model_info,
        "train": train_metrics,
        "train_seconds": train_seconds,  # the replay of the best trial and the refit
        "baselines": baselines,
        "calibration": calibration,
        "onnx_check": onnx_check,
        "preprocessing_check": preprocessing_check,
        "permutation_importance": permutation,
        "class_counts": (
            {category_key(k): int(v) for k, v in target.value_counts().items()}
            if prepared.task == "classification"
            else None
        ),
        "inference": inference,
        "sweep_wall_s": sweep_wall_s,
        "export_seconds": export_seconds,
        "artifacts": {name: (best_dir / name).stat().st_size for name in artifacts},
    }
    (best_dir / EXPORT_FILE).write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    report, html_path = write_report(run_dir, staged=best_dir)
    published = publish(best_dir)
    return ExportResult(
        published, report, published / html_path.relative_to(best_dir), export_seconds
    )
