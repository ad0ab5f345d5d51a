"""Load an exported model directory (``RUN_DIR/best``) and predict on raw rows.

Loading reads JSON and an ONNX file and nothing else: no pickle, no torch, no
scikit-learn. The directory holds:

* ``model.json``: the manifest (task, target column, class labels in order, the ONNX
  graph's input and output names, the CSV delimiter and text encoding);
* ``preprocessing.json``: the cleaning spec (hpo.data.clean: which raw columns, read as
  numbers or categories, the missing-value markers) and, per model input, the fitted
  preprocessing as plain parameters (hpo.export.transform applies them);
* ``model.onnx``: the model, outputs class probabilities or values in the target's units.

Raw rows go through the same steps as the training file: ``clean_features`` (stray text
in a numeric column becomes missing, categories get their canonical spelling), then the
exported preprocessing, then the ONNX model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

# hpo.data.clean and hpo.data.files import numpy, pandas and pyarrow only (hpo.data's
# __init__ loads its scikit-learn parts lazily).
from hpo.data.clean import category_text, clean_features, to_numbers
from hpo.data.files import read_frame
from hpo.errors import DataError
from hpo.export.bounds import check_sizes
from hpo.export.transform import PREPROCESSING_FORMAT, required_columns, transform_rows
from hpo.rundir import BestFiles

MANIFEST_FILE = BestFiles.MANIFEST
PREPROCESSING_FILE = BestFiles.PREPROCESSING
ONNX_FILE = BestFiles.ONNX
MODEL_FORMAT = "hpo.model/2"
PREDICTION_COLUMN = "prediction"
PROBA_PREFIX = "proba_"
LISTED_VALUES = 3  # unreadable numbers shown per column


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
    def cleaning(self) -> dict[str, Any]:
        return self.preprocessing["cleaning"]

    @property
    def columns(self) -> list[str]:
        """The raw columns the model needs, in the training file's order."""
        return required_columns(self.preprocessing)

    def clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw rows cleaned as the training rows were (extra columns dropped).

        Raises:
            DataError: a column the model needs is missing (named in the message).
        """
        return clean_features(frame, self.cleaning)

    def inputs(self, cleaned: pd.DataFrame) -> dict[str, np.ndarray]:
        """The ONNX graph's inputs for cleaned rows (one array per model input)."""
        return {
            spec["name"]: transform_rows(cleaned, spec) for spec in self.preprocessing["inputs"]
        }

    def features(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The ONNX graph's inputs for raw rows."""
        return self.inputs(self.clean(frame))

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The ONNX graph's output for preprocessed inputs, as float64."""
        (output,) = self.session.run([self.manifest["output"]], inputs)
        return np.asarray(output, dtype=np.float64)

    def unreadable_numbers(
        self, frame: pd.DataFrame, cleaned: pd.DataFrame
    ) -> dict[str, tuple[int, list[str]]]:
        """Numeric columns whose raw text did not parse (now missing, so imputed):
        column -> (count, a few of the values)."""
        na_values = set(self.cleaning["na_values"])
        found = {}
        for column in self.cleaning["numeric"]:
            raw = frame[column]
            if pd.api.types.is_numeric_dtype(raw):
                continue
            text = raw.astype(str).str.strip()
            lost = (raw.notna() & cleaned[column].isna() & ~text.isin(na_values)).to_numpy()
            if lost.any():
                found[column] = (int(lost.sum()), list(dict.fromkeys(text[lost]))[:LISTED_VALUES])
        return found

    def true_values(self, target: pd.Series) -> pd.Series:
        """A raw target column as the model's labels (or float values), missing where the
        cell is empty. Labels are matched as training normalized them (surrounding
        spaces, case); a label the model never saw stays as written."""
        na_values = set(self.cleaning["na_values"])
        if self.task != "classification":
            return to_numbers(target, na_values)
        lookup = {category_text(c, fold_case=True): c for c in self.classes}

        def label(value: Any) -> Any:
            if pd.isna(value) or str(value).strip() in na_values:
                return np.nan
            key = category_text(value, fold_case=True)
            return lookup.get(key, str(value).strip())

        # built as object: a map() with missing cells would turn integer labels into floats
        labels = [label(value) for value in target.tolist()]
        return pd.Series(labels, index=target.index, name=target.name, dtype=object)

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
        return self.predict_cleaned(self.clean(frame))

    def predict_cleaned(self, cleaned: pd.DataFrame) -> pd.DataFrame:
        """Predictions for rows that ``clean`` (or training's cleaning) already cleaned."""
        return self.to_frame(self.run(self.inputs(cleaned)), cleaned.index)


REEXPORT = (
    "export it again: `hpo.export.pipeline.export_best(RUN_DIR)` rewrites RUN_DIR/best "
    "from a finished sweep"
)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(
            f"{path} is missing, so the model directory is incomplete (it needs "
            f"{MANIFEST_FILE}, {PREPROCESSING_FILE} and {ONNX_FILE}); {REEXPORT}."
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); {REEXPORT}.") from None
    if not isinstance(document, dict):
        raise DataError(f"{path} holds no JSON object; {REEXPORT}.")
    return document


def _onnx_session(path: Path, threads: int | None) -> ort.InferenceSession:
    if not path.is_file():
        raise DataError(f"{path} is missing, so the model directory is incomplete; {REEXPORT}.")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own (non-public) exception types
        message = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{path} is not a loadable ONNX model ({message}); the file is damaged or was "
            f"cut short; {REEXPORT}."
        ) from None


def load_model(model_dir: str | Path, threads: int | None = None) -> ExportedModel:
    """Load ``model_dir`` (a run's ``best/``). ``threads`` caps onnxruntime's threads.

    Raises:
        DataError: the directory is not an exported model, or a file of it is missing,
            damaged or of another format (the file is named).
    """
    directory = Path(model_dir)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DataError(
            f"{directory} holds no {MANIFEST_FILE}; pass an exported model directory "
            "(RUN_DIR/best, written at the end of `hpo sweep`)."
        )
    manifest = _read_json(manifest_path)
    if manifest.get("format") != MODEL_FORMAT:
        raise DataError(
            f"{manifest_path} has format {manifest.get('format')!r}, this hpo reads "
            f"{MODEL_FORMAT!r}; {REEXPORT} with this version."
        )
    preprocessing_path = directory / PREPROCESSING_FILE
    preprocessing = _read_json(preprocessing_path)
    if preprocessing.get("format") != PREPROCESSING_FORMAT:
        raise DataError(
            f"{preprocessing_path} has format {preprocessing.get('format')!r}, this hpo "
            f"reads {PREPROCESSING_FORMAT!r}; {REEXPORT} with this version."
        )
    session = _onnx_session(directory / ONNX_FILE, threads)
    widths = {i.name: (i.shape[-1] if i.shape else None) for i in session.get_inputs()}
    check_sizes(preprocessing, widths, str(directory / PREPROCESSING_FILE))  # before allocating
    return ExportedModel(manifest, preprocessing, session)


def read_rows(path: str | Path, model: ExportedModel) -> pd.DataFrame:
    """Read CSV or Parquet rows as the training file was read: pyarrow's typed columns,
    the training's missing-value markers as missing, categorical columns as text (so
    ``007`` stays the category ``"007"``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {path} does not exist; pass a CSV or Parquet file.")
    if path.stat().st_size == 0:
        raise DataError(f"input file {path} is empty (0 bytes).")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return read_frame(str(path), "parquet")
    if suffix not in (".csv", ".txt", ".tsv"):
        raise DataError(f"input file {path}: use a .csv, .tsv or .parquet file.")
    delimiter = "\t" if suffix == ".tsv" else model.manifest.get("delimiter") or ","
    frame = read_frame(
        str(path),
        "csv",
        model.cleaning["na_values"],
        delimiter=delimiter,
        string_columns=model.cleaning["categorical"],
        encoding=model.manifest.get("file_encoding") or "utf-8",
    )
    frame.columns = [str(c) for c in frame.columns]
    return frame


def write_predictions(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Write predictions as Parquet (``.parquet``) or CSV (anything else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        predictions.to_parquet(path, index=False)
    else:
        predictions.to_csv(path, index=False)
    return path
