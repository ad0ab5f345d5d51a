"""The best trial, exported: refit, ONNX model + JSON preprocessing, evaluation report.

``hpo.export.pipeline.export_best(run_dir)`` writes ``RUN_DIR/best``;
``hpo.export.predictor.load_model(best_dir)`` loads it (JSON and ONNX only, no pickle,
no torch); ``hpo.export.report.write_report(run_dir)`` rebuilds report.json/.html.
This package's ``__init__`` imports only the loader, so a deployment does not pull in
torch or scikit-learn.
"""

from hpo.export.predictor import ExportedModel, load_model

__all__ = ["ExportedModel", "load_model"]
