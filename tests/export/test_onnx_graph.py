"""The exported ONNX graph computes what the torch model computes, at any batch size."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hpo.export.onnx_model import ExportGraph, check_onnx, export_onnx, input_names
from hpo.models.build import build_module

OPTIM = {"lr": 1e-3, "weight_decay": 0.0, "label_smoothing": 0.0}


def _mlp(task: str, output_dim: int, seed: int):
    torch.manual_seed(seed)
    module = build_module(
        {
            "_target_": "hpo.models.mlp.TabularMLP",
            "hidden_dim": 16,
            "num_layers": 2,
            "dropout": 0.3,
            "batch_norm": True,
            "activation": "gelu",
        },
        6,
        output_dim,
        task,
        OPTIM,
    )
    module.train()
    module(torch.randn(32, 6))  # move batch-norm statistics off their defaults
    return module.eval()


@pytest.mark.parametrize(
    "task, models, y_means, y_stds",
    [
        ("classification", 1, [0.0], [1.0]),
        ("classification", 3, [0.0] * 3, [1.0] * 3),
        ("regression", 2, [150.0, 152.0], [70.0, 75.0]),
    ],
)
def test_onnx_matches_torch_for_refit_and_ensemble(tmp_path, task, models, y_means, y_stds):
    output_dim = 3 if task == "classification" else 1
    graph = ExportGraph([_mlp(task, output_dim, s) for s in range(models)], task, y_means, y_stds)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(300, 6)).astype(np.float32) for _ in range(models)]
    path = tmp_path / "model.onnx"
    export_onnx(graph, inputs, path, "hpo.models.mlp.TabularMLP")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == input_names(models)
    for rows in (1, 7, 300):  # the batch axis is dynamic
        check = check_onnx(graph, session, [x[:rows] for x in inputs])
        assert check["passed"] and check["rows"] == rows
    (probabilities,) = session.run(None, dict(zip(input_names(models), inputs)))
    if task == "classification":
        assert probabilities.shape == (300, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    else:  # values come back in the target's units, not standardized
        assert probabilities.shape == (300,)
        assert 0 < abs(probabilities.mean()) and abs(probabilities.mean() - 151) < 60


def test_a_users_module_exports(tmp_path):
    from user_models import TinyLinear

    torch.manual_seed(0)
    graph = ExportGraph(
        [TinyLinear(6, 3, "classification", OPTIM, width=4).eval()], "classification", [0.0], [1.0]
    )
    x = np.random.default_rng(1).normal(size=(20, 6)).astype(np.float32)
    export_onnx(graph, [x], tmp_path / "model.onnx", "user_models.TinyLinear")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert check_onnx(graph, session, [x])["passed"]


def test_a_wide_target_passes_the_check_relative_to_its_scale_and_is_clipped(tmp_path):
    # prices: mean 4000, std 4000, values near 0 and in the thousands
    model = _mlp("regression", 1, 0)
    x = np.random.default_rng(2).normal(scale=3.0, size=(500, 6)).astype(np.float32)
    raw = ExportGraph([model], "regression", [4000.0], [4000.0])(torch.as_tensor(x))
    raw = raw.detach().numpy()
    low, high = np.quantile(raw, [0.2, 0.8])  # a fifth of the rows on each side
    graph = ExportGraph([model], "regression", [4000.0], [4000.0], clip=(low, high))
    export_onnx(graph, [x], tmp_path / "model.onnx", "hpo.models.mlp.TabularMLP")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    check = check_onnx(graph, session, [x])
    assert check["passed"] and check["scale"] == 4000.0
    (values,) = session.run(None, {"features": x})
    assert values.min() >= low - 1e-3 and values.max() <= high + 1e-3
    np.testing.assert_allclose(values, np.clip(raw, low, high), rtol=1e-5, atol=0.05)


def test_a_log_target_is_undone_inside_the_graph_and_never_negative(tmp_path):
    # a price-like target learned as log(y): log-mean 8, log-std 1.5, unclipped
    models = [_mlp("regression", 1, s) for s in range(2)]
    x = np.random.default_rng(3).normal(scale=3.0, size=(400, 6)).astype(np.float32)
    graph = ExportGraph(
        models, "regression", [8.0, 8.1], [1.5, 1.4], target_transform="log", target_scale=6000.0
    )
    export_onnx(graph, [x, x], tmp_path / "model.onnx", "hpo.models.mlp.TabularMLP")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    check = check_onnx(graph, session, [x, x])
    assert check["passed"] and check["scale"] == 6000.0  # the target's std, not the log's
    (values,) = session.run(None, {"features_0": x, "features_1": x})
    with torch.inference_mode():
        logs = [m(torch.as_tensor(x)).reshape(-1).double().numpy() for m in models]
    expected = (np.exp(logs[0] * 1.5 + 8.0) + np.exp(logs[1] * 1.4 + 8.1)) / 2
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    assert values.min() > 0
