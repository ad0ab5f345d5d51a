"""Load an exported model directory (``RUN_DIR/best``) and predict on raw rows.

Loading reads JSON and an ONNX file and nothing else: no pickle, no torch, no
scikit-learn. The directory holds:

* ``model.json``: the manifest (task, target column, class labels in order, the ONNX
  graph's input and output names);
* ``preprocessing.json``: the raw columns and, per model input, the fitted
  preprocessing as plain parameters (hpo.export.transform applies them);
* ``model.onnx``: the model, outputs class probabilities or values in the target's units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from hpo.errors import DataError
from hpo.export.transform import check_columns, required_columns, transform_rows

MANIFEST_FILE = "model.json"
PREPROCESSING_FILE = "preprocessing.json"
ONNX_FILE = "model.onnx"
MODEL_FORMAT = "hpo.model/1"
PREDICTION_COLUMN = "prediction"
PROBA_PREFIX = "proba_"


def proba_column(label: Any) -> str:
    return f"{PROBA_PREFIX}{label}"


@dataclass
class ExportedModel:
    """An exported model, ready to predict on rows in the training file's format."""

    manifest: dict[str, Any]
    preprocessing: dict[str, Any]
    session: ort.InferenceSession

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def classes(self) -> list | None:
        return self.manifest.get("classes")

    @property
    def target(self) -> str | None:
        return self.manifest.get("target")

    @property
    def columns(self) -> list[str]:
        return required_columns(self.preprocessing)

    def features(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The ONNX graph's inputs for raw rows (one array per preprocessing spec)."""
        check_columns(frame, self.columns)
        return {spec["name"]: transform_rows(frame, spec) for spec in self.preprocessing["inputs"]}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The ONNX graph's output for preprocessed inputs, as float64."""
        (output,) = self.session.run([self.manifest["output"]], inputs)
        return np.asarray(output, dtype=np.float64)

    def predict_outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities ``[n, classes]`` or values ``[n]`` for raw rows."""
        return self.run(self.features(frame))

    def to_frame(self, outputs: np.ndarray, index: pd.Index | None = None) -> pd.DataFrame:
        """Predictions as a table: the label and one probability column per class, or
        the predicted value."""
        if self.task == "classification":
            # float32 softmax sums to 1 only to ~1e-7; renormalized in float64, the columns
            # are probabilities that scikit-learn's log loss accepts without a warning.
            outputs = outputs / outputs.sum(axis=1, keepdims=True)
            labels = np.asarray(self.classes, dtype=object)[outputs.argmax(axis=1)]
            data = {PREDICTION_COLUMN: labels}
            data.update({proba_column(c): outputs[:, i] for i, c in enumerate(self.classes)})
            return pd.DataFrame(data, index=index)
        return pd.DataFrame({PREDICTION_COLUMN: outputs.reshape(-1)}, index=index)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions for raw rows (extra columns ignored, the target column optional)."""
        return self.to_frame(self.predict_outputs(frame), frame.index)


def load_model(model_dir: str | Path, threads: int | None = None) -> ExportedModel:
    """Load ``model_dir`` (a run's ``best/``). ``threads`` caps onnxruntime's threads."""
    directory = Path(model_dir)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DataError(
            f"{directory} holds no {MANIFEST_FILE}; pass an exported model directory "
            "(RUN_DIR/best, written at the end of `hpo sweep`)."
        )
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != MODEL_FORMAT:
        raise DataError(
            f"{manifest_path} has format {manifest.get('format')!r}, this hpo reads "
            f"{MODEL_FORMAT!r}; export the model again with this version (`hpo report`)."
        )
    preprocessing = json.loads((directory / PREPROCESSING_FILE).read_text())
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(directory / ONNX_FILE), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return ExportedModel(manifest, preprocessing, session)


def read_rows(path: str | Path, model: ExportedModel) -> pd.DataFrame:
    """Read CSV or Parquet rows as the training data was read: categorical columns as
    text, the configured missing-value markers as missing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix not in (".csv", ".txt", ".tsv"):
        raise DataError(f"input file {path}: use a .csv or .parquet file.")
    kinds = {c["name"]: c["kind"] for c in model.preprocessing["columns"]}
    text = [name for name, kind in kinds.items() if kind == "categorical"]
    return pd.read_csv(
        path,
        sep="\t" if suffix == ".tsv" else ",",
        dtype={name: object for name in text},
        na_values=model.manifest.get("na_values") or None,
        keep_default_na=True,
    )


def write_predictions(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Write predictions as Parquet (``.parquet``) or CSV (anything else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        predictions.to_parquet(path, index=False)
    else:
        predictions.to_csv(path, index=False)
    return path
