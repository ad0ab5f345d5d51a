"""Temperature scaling of a classifier's probabilities, fitted on out-of-fold predictions.

The best trial's k fold-models (replayed with their early-stopping weights, hpo.export.
refit) each predict the validation part of their own fold: every non-test row gets one
out-of-fold logit vector from a model that never trained on it. One temperature T > 0
minimizes the log loss of ``softmax(logits / T)`` over those rows (Guo et al. 2017,
"On Calibration of Modern Neural Networks"), against Platt's smoothed targets so that
error-free out-of-fold rows do not drive T to 0 (``smoothed_log_loss``). The test rows take no part; the export puts
T inside the ONNX graph (hpo.export.onnx_model.ExportGraph), so every prediction of the
exported model, `hpo predict` included, is calibrated. T only rescales the logits: the
predicted class, hence accuracy, stays the same.

A temperature cannot tame a row unlike any the model trained on (every column missing,
say): its logits are extreme at any T. So the calibrated probabilities are also mixed
with the uniform distribution by ``uniform_weight(n, K)``, which caps every probability
at Platt's target ``1 - 1/(n + 2)``: n calibration rows are no evidence for more
certainty, and a wrong prediction never comes out with p = 1.0. The mixing keeps the
predicted class.

``export.calibration``: ``temperature`` (default) or ``none``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import log_loss

from hpo.data.prepare import FoldArrays
from hpo.errors import ConfigError

METHODS = ("temperature", "none")
BINS = 10  # equal-width confidence bins of the reliability diagram and the ECE
LOG_T_BOUNDS = (-4.0, 4.0)  # T in [0.018, 55]


def calibration_method(cfg: Any) -> str:
    method = (cfg.get("export") or {}).get("calibration", "temperature")
    if method not in METHODS:
        raise ConfigError(
            f"config key `export.calibration`: must be temperature or none, got {method!r}."
        )
    return method


def out_of_fold_logits(
    fold_modules: list[Any], folds: list[FoldArrays]
) -> tuple[np.ndarray, np.ndarray]:
    """Each fold-model's logits on its own fold's validation rows, stacked, and the rows'
    class indices."""
    logits, targets = [], []
    with torch.inference_mode():
        for module, fold in zip(fold_modules, folds):
            module.eval()
            logits.append(module(torch.as_tensor(fold.X_val)).double().numpy())
            targets.append(np.asarray(fold.y_val, dtype=np.int64))
    return np.concatenate(logits), np.concatenate(targets)


def scaled_log_loss(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)``."""
    log_p = log_softmax(logits / temperature, axis=1)
    return float(-log_p[np.arange(len(y)), y].mean())


def smoothed_log_loss(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Cross-entropy of ``softmax(logits / temperature)`` against Platt's targets: the
    true class ``1 - 1/(n + 2)``, the rest sharing ``1/(n + 2)``.

    Platt (1999) fits his sigmoid to such targets so that a model without a single error
    on its n calibration rows is not pushed to certainty: with hard targets the loss of
    error-free out-of-fold predictions falls all the way to T -> 0 (probability 1.0 on
    every row, wrong test rows included). With errors present the targets hardly matter.
    """
    n, classes = logits.shape
    rest = 1.0 / (n + 2)
    log_p = log_softmax(logits / temperature, axis=1)
    true = log_p[np.arange(n), y]
    others = (log_p.sum(axis=1) - true) / max(classes - 1, 1)
    return float(-((1.0 - rest) * true + rest * others).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimizes ``smoothed_log_loss`` on the given rows (searched on
    log T, so T stays positive)."""
    found = minimize_scalar(
        lambda log_t: smoothed_log_loss(logits, y, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(found.x))


def uniform_weight(rows: int, classes: int) -> float:
    """The weight of the uniform distribution in the mix that caps the largest
    probability at ``1 - 1/(rows + 2)``: ``(1 - w) + w / K = 1 - 1/(rows + 2)``."""
    return classes / ((classes - 1) * (rows + 2)) if classes > 1 else 0.0


def mix_uniform(proba: np.ndarray, weight: float) -> np.ndarray:
    return proba * (1.0 - weight) + weight / proba.shape[1]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(logits / temperature, axis=1))


def reliability(proba: np.ndarray, y: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Expected calibration error and the reliability diagram's bins, on the top-class
    confidence: per equal-width bin, the rows in it, their mean confidence and accuracy."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        conf = float(confidence[inside].mean()) if count else None
        acc = float(correct[inside].mean()) if count else None
        if count:
            ece += count / len(y) * abs(acc - conf)
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "rows": count,
                "confidence": conf,
                "accuracy": acc,
            }
        )
    return {"ece": float(ece), "bins": rows}


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's log loss, as the report's test metrics compute it."""
    return float(log_loss(y, proba, labels=list(range(proba.shape[1]))))


def compare(before: np.ndarray, after: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Log loss, ECE and reliability bins of probabilities before and after calibration."""
    # float32 graph outputs sum to 1 only within 1e-7, which scikit-learn's log loss flags
    before = before / before.sum(axis=1, keepdims=True)
    after = after / after.sum(axis=1, keepdims=True)
    ours_before, ours_after = reliability(before, y), reliability(after, y)
    return {
        "rows": int(len(y)),
        "log_loss_before": _log_loss(before, y),
        "log_loss_after": _log_loss(after, y),
        "ece_before": ours_before["ece"],
        "ece_after": ours_after["ece"],
        "bins_before": ours_before["bins"],
        "bins_after": ours_after["bins"],
        "max_probability_after": float(after.max()) if after.size else None,
    }


def calibrate(cfg: Any, fold_modules: list[Any], folds: list[FoldArrays]) -> dict[str, Any]:
    """Fit the temperature on the best trial's out-of-fold logits.

    Returns the record export.json keeps: ``method``, ``temperature`` (1.0 for ``none``)
    and the out-of-fold ``fit`` figures (``compare``); the export adds ``test``.
    """
    method = calibration_method(cfg)
    logits, y = out_of_fold_logits(fold_modules, folds)
    temperature = fit_temperature(logits, y) if method == "temperature" else 1.0
    weight = uniform_weight(len(y), logits.shape[1]) if method == "temperature" else 0.0
    return {
        "method": method,
        "temperature": temperature,
        "uniform_weight": weight,
        "max_probability": 1.0 - weight + weight / logits.shape[1],
        "fitted_on": f"out-of-fold predictions of the best trial's {len(folds)} fold-models "
        f"on the {len(y)} non-test rows (each row predicted by the model that did not train "
        "on it); the test rows take no part",
        "fit": compare(softmax(logits), mix_uniform(softmax(logits, temperature), weight), y),
    }


def test_figures(graph: Any, inputs: list[np.ndarray], y_test: np.ndarray) -> dict[str, Any]:
    """``compare`` on the test rows: the export graph's probabilities at T = 1 unmixed, and
    as exported (measured after the fit; nothing is fitted here)."""
    from hpo.export.onnx_model import torch_outputs

    fitted = graph.temperature.clone(), graph.uniform_weight.clone()
    try:
        graph.temperature.fill_(1.0)
        graph.uniform_weight.fill_(0.0)
        before = torch_outputs(graph, inputs).astype(np.float64)
    finally:
        graph.temperature.copy_(fitted[0])
        graph.uniform_weight.copy_(fitted[1])
    after = torch_outputs(graph, inputs).astype(np.float64)
    return compare(before, after, np.asarray(y_test, dtype=np.int64))
