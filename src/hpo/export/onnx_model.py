"""The exported graph: fold-model(s) + the task's output head, written as ONNX and checked
against torch with onnxruntime.

The graph outputs what a deployment needs without hpo: class probabilities (softmax of
the logits; an ensemble averages its models' probabilities) or regression values in the
target's own units (the models learn standardized targets, of the target's transform if
``data.target_transform`` chose one: the graph undoes both, exp included). It uses torch's TorchScript
based exporter (``dynamo=False``): on torch 2.13 the torch.export based one needs the
extra ``onnxscript`` package and takes seconds per export, and the models here are plain
feed-forward graphs that the TorchScript tracer exports exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from hpo.data.target_transform import inverse
from hpo.errors import ConfigError

OUTPUT_NAMES = {"classification": "probabilities", "regression": "prediction"}
# |onnx - torch| <= TOLERANCE * (scale + |torch|), elementwise. scale: 1 for
# probabilities, the target's std for regression: float32 rounding grows with the
# target's units, so a bound relative to each value alone fails small values of a wide
# target (prices near 0 in a table of prices in the thousands).
TOLERANCE = 1e-5


class ExportGraph(nn.Module):
    """k models (k=1 for a refit), each on its own preprocessed input, averaged.

    Args:
        models: the trained LightningModules (eval mode, on CPU).
        task: ``classification`` or ``regression``.
        y_means, y_stds: per model, the target standardization to undo (regression).
        clip: (low, high) a regression prediction is clipped to (None: not clipped).
        temperature: classification logits are divided by it before the softmax
            (hpo.export.calibration; 1.0: uncalibrated).
        uniform_weight: the class probabilities are mixed with the uniform distribution by
            this weight, so that none reaches 1.0 (hpo.export.calibration; 0: unmixed).
        target_transform: the regression target's transform (hpo.data.target_transform),
            undone after the standardization, before the models' values are averaged.
        target_scale: the target's standard deviation in its own units, which the ONNX
            check's tolerance is relative to (None: the largest of ``y_stds``, right only
            for an untransformed target).
    """

    def __init__(
        self,
        models: list[nn.Module],
        task: str,
        y_means: list[float],
        y_stds: list[float],
        clip: tuple[float, float] | None = None,
        temperature: float = 1.0,
        uniform_weight: float = 0.0,
        target_transform: str = "none",
        target_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.target_transform = target_transform
        self.target_scale = target_scale
        self.models = nn.ModuleList(models)
        self.task = task
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self.register_buffer("y_means", torch.tensor(y_means, dtype=torch.float32))
        self.register_buffer("y_stds", torch.tensor(y_stds, dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.register_buffer("uniform_weight", torch.tensor(float(uniform_weight)))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        outputs = []
        for i, (model, x) in enumerate(zip(self.models, inputs)):
            out = model(x)
            if self.task == "classification":
                outputs.append(torch.softmax(out / self.temperature, dim=-1))
            else:
                standardized = out.reshape(-1) * self.y_stds[i] + self.y_means[i]
                outputs.append(inverse(self.target_transform, standardized))
        out = outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0)
        if self.task == "classification":
            out = out * (1.0 - self.uniform_weight) + self.uniform_weight / out.shape[-1]
        if self.clip is not None and self.task == "regression":
            out = torch.clamp(out, self.clip[0], self.clip[1])
        return out


def input_names(count: int) -> list[str]:
    return ["features"] if count == 1 else [f"features_{i}" for i in range(count)]


def export_onnx(graph: ExportGraph, examples: list[np.ndarray], path: Path, target: str) -> None:
    """Write ``graph`` to ``path`` with a dynamic batch axis; ConfigError if it cannot be."""
    graph = graph.cpu().eval()
    names = input_names(len(examples))
    output = OUTPUT_NAMES[graph.task]
    args = tuple(torch.as_tensor(x[:2]) for x in examples)
    axes = {name: {0: "batch"} for name in [*names, output]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                graph,
                args,
                str(path),
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                dynamo=False,
            )
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ConfigError(
            f"config key `model._target_`: cannot export {target} to ONNX ({exc}). Its "
            "forward(x) must be traceable (tensor ops only, no data-dependent Python control "
            "flow); the sweep's results are kept in the run directory."
        ) from exc


def torch_outputs(graph: ExportGraph, inputs: list[np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return graph(*(torch.as_tensor(x) for x in inputs)).numpy()


def output_scale(graph: ExportGraph) -> float:
    """The scale the ONNX check's tolerance is relative to: 1 for probabilities, the
    target's standard deviation in its own units for regression values (``target_scale``;
    else the largest fold's standardization, which is that for an untransformed target)."""
    if graph.task == "classification":
        return 1.0
    if graph.target_scale is not None:
        return float(graph.target_scale) or 1.0
    return float(graph.y_stds.abs().max()) or 1.0


def check_onnx(
    graph: ExportGraph, session: ort.InferenceSession, inputs: list[np.ndarray]
) -> dict[str, Any]:
    """Compare onnxruntime's outputs with torch's on the same preprocessed rows, within
    TOLERANCE relative to the output's scale (``output_scale``) and to each value."""
    expected = torch_outputs(graph, inputs)
    feed = dict(zip(input_names(len(inputs)), inputs))
    (actual,) = session.run(None, feed)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    scale = output_scale(graph)
    bound = TOLERANCE * (scale + np.abs(expected.astype(np.float64)))
    return {
        "rows": int(inputs[0].shape[0]),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "scale": scale,
        "tolerance": f"|onnx - torch| <= {TOLERANCE:g} * ({scale:.4g} + |torch|)",
        "passed": bool((diff <= bound).all()),
        "runtime": f"onnxruntime {ort.__version__}",
        "exporter": f"torch {torch.__version__} (TorchScript exporter)",
    }
