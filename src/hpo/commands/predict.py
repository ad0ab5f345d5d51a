"""`hpo predict MODEL_DIR INPUT --output OUT`: predict with an exported model."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hpo.rundir import BestFiles

if TYPE_CHECKING:
    import pandas as pd

    from hpo.export.predictor import ExportedModel

# What each kind of export loads; `hpo predict` refuses a model directory whose export did
# not list them complete (hpo.export.staging).
MODEL_FILES = (BestFiles.MANIFEST, BestFiles.PREPROCESSING, BestFiles.ONNX)
LIGHTNING_FILES = (BestFiles.MANIFEST, BestFiles.CONFIG, BestFiles.CHECKPOINT)

NAME = "predict"
HELP = "predict with an exported model (RUN_DIR/best) on CSV or Parquet rows"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="the exported model directory, RUN_DIR/best")
    parser.add_argument(
        "input",
        nargs="?",
        help="CSV or Parquet rows in the training file's format (target optional); a "
        "Lightning-path model reads its DataModule's predict_dataloader() instead, or INPUT "
        "where the DataModule reads one (data=images: a folder of images)",
    )
    parser.add_argument(
        "--output", "-o", required=True, help="where to write predictions (.csv or .parquet)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --output if it exists (never INPUT, never a file of MODEL_DIR)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads (default: all cores)"
    )


def run(args: argparse.Namespace) -> int:
    from hpo.export.lightning_predict import is_lightning_export, predict_lightning
    from hpo.export.staging import check_complete
    from hpo.paths import new_output_file, os_errors

    # Before anything is loaded: nothing is overwritten unasked, the input and the
    # model's own files never.
    inputs = [args.input] if args.input else []
    new_output_file(args.output, "--output", args.overwrite, inputs, [args.model_dir])
    lightning = is_lightning_export(args.model_dir)
    check_complete(args.model_dir, LIGHTNING_FILES if lightning else MODEL_FILES)
    if lightning:
        with os_errors(args.output, "--output"):
            path, rows = predict_lightning(
                args.model_dir, args.output, args.input, overwrite=args.overwrite
            )
        print(f"hpo: {rows} predictions written to {path}")
        return 0
    if args.input is None:
        from hpo.errors import HPOError

        raise HPOError("hpo predict: give the INPUT file of rows to predict.")
    # Only the loader: no torch, no scikit-learn, nothing unpickled.
    from hpo.export.predictor import load_model, read_rows, write_predictions

    model = load_model(args.model_dir, threads=args.threads)
    rows = read_rows(args.input, model)
    cleaned = model.clean(rows)  # names any missing column before anything is written
    for column, (count, values) in model.unreadable_numbers(rows, cleaned).items():
        shown = ", ".join(repr(v) for v in values)
        print(
            f"hpo: note: column `{column}` is numeric but {count} value(s) are not numbers "
            f"({shown}); they are treated as missing and imputed, as in training."
        )
    predictions = model.predict_cleaned(cleaned)
    with os_errors(args.output, "--output"):  # a full disk, say
        path = write_predictions(predictions, args.output)
    print(f"hpo: {len(predictions)} predictions ({model.task}) written to {path}")
    if model.target and model.target in rows.columns:
        _score(model, rows[model.target], predictions)
    return 0


def _score(model: ExportedModel, target: pd.Series, predictions: pd.DataFrame) -> None:
    """Print the metrics on the rows whose target is known (the predictions stand)."""
    from hpo.errors import DataError
    from hpo.export.metrics import evaluate_predictions

    truth = model.true_values(target)
    known = truth.notna().to_numpy()
    if not known.any():
        return
    try:
        metrics = evaluate_predictions(model.manifest, truth[known], predictions[known])
    except DataError as exc:  # only the scoring is skipped
        print(f"  the target column `{model.target}` cannot be scored: {exc}")
        return
    shown = ", ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != "loss"
    )
    print(f"  the input has the target column `{model.target}` ({int(known.sum())} rows): {shown}")
    absent = metrics.get("absent_classes") or []
    if absent:
        listed = ", ".join(repr(c) for c in absent)
        print(
            f"  the macro metrics average the {metrics['macro_classes']} of "
            f"{len(model.classes)} classes that the input holds or the model predicted; "
            f"no row of the input is {listed}"
            + ("" if metrics["roc_auc"] is not None else ", so ROC-AUC is not computed")
        )
