"""`hpo predict MODEL_DIR INPUT --output OUT`: predict with an exported model."""

from __future__ import annotations

import argparse

NAME = "predict"
HELP = "predict with an exported model (RUN_DIR/best) on CSV or Parquet rows"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="the exported model directory, RUN_DIR/best")
    parser.add_argument(
        "input", help="CSV or Parquet rows in the training file's format (target optional)"
    )
    parser.add_argument(
        "--output", "-o", required=True, help="where to write predictions (.csv or .parquet)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads (default: all cores)"
    )


def run(args: argparse.Namespace) -> int:
    # Only the loader: no torch, no scikit-learn, nothing unpickled.
    from hpo.export.predictor import load_model, read_rows, write_predictions

    model = load_model(args.model_dir, threads=args.threads)
    rows = read_rows(args.input, model)
    predictions = model.predict(rows)
    path = write_predictions(predictions, args.output)
    print(f"hpo: {len(predictions)} predictions ({model.task}) written to {path}")
    if model.target and model.target in rows.columns and rows[model.target].notna().all():
        from hpo.errors import DataError
        from hpo.export.metrics import evaluate_predictions

        try:
            metrics = evaluate_predictions(model.manifest, rows[model.target], predictions)
        except DataError as exc:  # the predictions stand; only the scoring is skipped
            print(f"  the target column `{model.target}` cannot be scored: {exc}")
            return 0
        shown = ", ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != "loss"
        )
        print(f"  the input has the target column `{model.target}`: {shown}")
    return 0
