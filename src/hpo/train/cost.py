"""What a trial's model costs to run: objectives beside its quality.

``latency_ms``: the wall time of one forward pass of one fold-model (the model the
export ships is one such network, or k of them for ``export.strategy=ensemble``) over a
fixed batch of at most ``LATENCY_ROWS`` validation rows of fold 0, on the trial's own
device and threads (``resources.cpus_per_trial``), in eval mode without autograd:
``LATENCY_WARMUP`` untimed passes, then the median of ``LATENCY_RUNS`` timed ones (on a
GPU each is synchronized). It is measured once per trial (a dense network's cost does
not depend on its weights) and reported with every epoch; a resumed trial measures again.
On a contended machine it is noisy: the median of a few runs damps that, it does not
remove it.

* Tabular engine: the first ``LATENCY_ROWS`` validation rows of fold 0, after the first
  epoch, on a standalone copy of fold 0's model, under ``torch.inference_mode``.
* Lightning path (a user's LightningModule, the fine-tuning modules): the first
  ``LATENCY_ROWS`` rows of the first batch of fold 0's validation loader (fewer when
  the DataModule's validation batch is smaller), as it reaches ``validation_step`` (on
  the device, after the module's batch-transfer hooks), timed at the end of the first
  epoch that validated, on the live module under ``torch.no_grad`` (no inference
  tensors can leak into a module that trains on), its train mode restored after.
  The forward is called as ``module(x)`` with ``x`` the batch's inputs
  (``batch_inputs``: ``x`` of ``(x, y, ...)``, a dict's ``x``/``input``/``inputs``/
  ``image``/``images`` entry, else the dict itself, else the batch); a dict that
  ``module(x)`` refuses is passed as keywords, ``module(**x)``. A forward that cannot be
  called that way gives NaN (one warning per process); a sweep with ``latency_ms`` as
  an objective then fails before Ray (hpo.train.lightning_plan).

``param_count``: every parameter of the model, trainable or frozen (the size of what is
deployed; buffers are not counted). For a LoRA fine-tune this counts the unmerged
adapters beside the base weights.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

log = logging.getLogger(__name__)

LATENCY_ROWS = 256
LATENCY_WARMUP = 2
LATENCY_RUNS = 7
COST_METRICS = ("latency_ms", "param_count")
INPUT_KEYS = ("x", "input", "inputs", "image", "images")
_warned: list[str] = []  # one warning per process for an untimeable forward


def param_count(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in ``value`` (a tensor, or a dict, list or tuple holding some)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, Mapping):
        value = list(value.values())
    for item in value if isinstance(value, (list, tuple)) else ():
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def latency_ms(
    forward: Callable[[], Any], device: torch.device, grad_off: Callable[[], Any]
) -> float:
    """Median milliseconds of ``forward()`` (see the module docstring), each pass under
    ``grad_off()`` (``torch.inference_mode`` or ``torch.no_grad``)."""
    cuda = device.type == "cuda"
    times = []
    with grad_off():
        for run in range(LATENCY_WARMUP + LATENCY_RUNS):
            if cuda:
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            forward()
            if cuda:
                torch.cuda.synchronize(device)
            if run >= LATENCY_WARMUP:
                times.append((time.perf_counter() - started) * 1000.0)
    return float(statistics.median(times))


def model_cost(module: Any, X_val: torch.Tensor) -> dict[str, float]:
    """``{"latency_ms": ..., "param_count": ...}`` of one fold-model on its validation rows."""
    batch = X_val[:LATENCY_ROWS]
    module = module.to(batch.device)
    module.eval()
    return {
        "latency_ms": latency_ms(lambda: module(batch), batch.device, torch.inference_mode),
        "param_count": float(param_count(module)),
    }


# -- the Lightning path --------------------------------------------------------------


def batch_inputs(batch: Any) -> Any:
    """What a LightningModule's forward takes from one of its batches (the module
    docstring's rule)."""
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    if isinstance(batch, Mapping):
        return next((batch[k] for k in INPUT_KEYS if k in batch), batch)
    return batch


def first_rows(value: Any, rows: int) -> Any:
    """``value`` cut to its first ``rows`` rows: every tensor with a batch dimension (in
    a dict, list or tuple too); anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value[:rows] if value.dim() > 0 else value
    if isinstance(value, Mapping):
        return {k: first_rows(v, rows) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(first_rows(v, rows) for v in value)
    return value


def forward_call(module: Any, batch: Any) -> Callable[[], Any]:
    """A call of ``module``'s forward on the batch's first ``LATENCY_ROWS`` inputs, run
    once (under ``torch.no_grad``) to prove it works; raises what the forward raises."""
    inputs = first_rows(batch_inputs(batch), LATENCY_ROWS)
    with torch.no_grad():
        try:
            module(inputs)
            return lambda: module(inputs)
        except Exception:
            if not isinstance(inputs, Mapping):
                raise
        module(**inputs)  # a forward that takes the dict's entries as keywords
        return lambda: module(**inputs)


def lightning_cost(
    module: Any, batch: Any, time_forward: bool = True
) -> tuple[dict[str, float], str | None]:
    """``latency_ms`` and ``param_count`` of a live LightningModule on one validation
    batch (eval mode while timed, its mode restored), and why ``latency_ms`` is NaN
    (None when it is not): a forward that cannot take the batch's inputs, which one
    warning per process says. ``time_forward=False`` (latency is not an objective) counts
    the parameters only: nine forward passes of a large backbone on a CPU take seconds."""
    count = float(param_count(module))
    if not time_forward:
        return {"latency_ms": math.nan, "param_count": count}, None
    training = module.training
    module.eval()
    reason = None
    try:
        call = forward_call(module, batch)
        tensor = first_tensor(batch_inputs(batch))
        device = tensor.device if tensor is not None else torch.device("cpu")
        latency = latency_ms(call, device, torch.no_grad)
    except Exception as exc:  # a forward that takes other inputs than the batch holds
        reason = forward_failure(module, exc)
        if not _warned:
            _warned.append(reason)
            log.warning("hpo: latency_ms is NaN: %s", reason)
        latency = math.nan
    finally:
        module.train(training)
    return {"latency_ms": latency, "param_count": count}, reason


def forward_failure(module: Any, exc: BaseException) -> str:
    return (
        f"{type(module).__name__}(x) failed on a validation batch's inputs (x of (x, y), a "
        f"dict's x/input entry, or the dict): {type(exc).__name__}: {exc}"
    )
