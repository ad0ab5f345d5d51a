"""What a trial's model costs to run: objectives beside its quality.

``latency_ms``: the wall time of one forward pass of one fold-model (the model the
export ships is one such network, or k of them for ``export.strategy=ensemble``) over a
fixed batch of the first ``LATENCY_ROWS`` validation rows of fold 0, on the trial's own
device and threads (``resources.cpus_per_trial``), in eval mode under
``torch.inference_mode``: ``LATENCY_WARMUP`` untimed passes, then the median of
``LATENCY_RUNS`` timed ones (on a GPU each is synchronized). It is measured once per
trial, after its first epoch (a dense network's cost does not depend on its weights),
and reported with every epoch; a resumed trial measures again. On a contended machine it
is noisy: the median of a few runs damps that, it does not remove it.

``param_count``: the fold-model's trainable parameters.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

LATENCY_ROWS = 256
LATENCY_WARMUP = 2
LATENCY_RUNS = 7
COST_METRICS = ("latency_ms", "param_count")


def param_count(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def latency_ms(module: Any, batch: torch.Tensor) -> float:
    """Median milliseconds of one forward pass of ``module`` over ``batch`` (see the
    module docstring)."""
    cuda = batch.device.type == "cuda"
    module.eval()
    times = []
    with torch.inference_mode():
        for run in range(LATENCY_WARMUP + LATENCY_RUNS):
            if cuda:
                torch.cuda.synchronize(batch.device)
            started = time.perf_counter()
            module(batch)
            if cuda:
                torch.cuda.synchronize(batch.device)
            if run >= LATENCY_WARMUP:
                times.append((time.perf_counter() - started) * 1000.0)
    return float(statistics.median(times))


def model_cost(module: Any, X_val: torch.Tensor) -> dict[str, float]:
    """``{"latency_ms": ..., "param_count": ...}`` of one fold-model on its validation rows."""
    batch = X_val[:LATENCY_ROWS]
    module = module.to(batch.device)
    return {"latency_ms": latency_ms(module, batch), "param_count": float(param_count(module))}
