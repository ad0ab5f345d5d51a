"""Inference figures of an exported model, measured on this machine.

Everything runs on one thread (onnxruntime and torch alike) so that figures from a busy
machine stay comparable; torch's eager forward of the same model is the baseline,
measured in the same call. Peak memory is the peak resident size of a fresh Python
process that loads the model and predicts a 1024-row batch; that process also proves
that loading unpickles nothing (pickle is disabled in it).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hpo.export.onnx_model import ExportGraph
from hpo.export.predictor import ONNX_FILE, PREPROCESSING_FILE, load_model

BATCH = 1024
ONE_ROW_CALLS = 200
BATCH_CALLS = 10

# Run in a fresh interpreter: pickle is disabled before anything else is imported.
_FRESH_PROCESS = """
import json, pickle, sys
def _refuse(*args, **kwargs):
    raise RuntimeError("unpickling is not allowed when loading an exported model")
class _Refuse:
    def __init__(self, *args, **kwargs):
        _refuse()
pickle.load = pickle.loads = _refuse
pickle.Unpickler = _Refuse
import _pickle
_pickle.load = _pickle.loads = _refuse
_pickle.Unpickler = _Refuse
def _status_kib(field):
    # VmHWM/VmRSS belong to this process image; getrusage's ru_maxrss would also count
    # the parent's memory from before exec.
    try:
        lines = open("/proc/self/status").read().splitlines()
    except OSError:  # not Linux
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None
import pandas as pd
from hpo.export.predictor import load_model
before = _status_kib("VmRSS")
model = load_model(sys.argv[1], threads=1)
rows = pd.read_parquet(sys.argv[2])
predictions = model.predict(rows)
peak = _status_kib("VmHWM")
heavy = sorted(m for m in ("torch", "sklearn", "joblib", "lightning", "ray") if m in sys.modules)
print(json.dumps({"rows": len(predictions), "peak_kib": peak, "imports_kib": before,
                  "heavy_modules": heavy}))
"""


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def _time_calls(call, args: list[Any], warmup: int = 10) -> list[float]:
    for a in args[:warmup]:
        call(a)
    seconds = []
    for a in args:
        start = time.perf_counter()
        call(a)
        seconds.append(time.perf_counter() - start)
    return seconds


def _bytes(kib: int | None) -> int | None:
    return None if kib is None else int(kib) * 1024


def fresh_process_check(model_dir: Path, rows: pd.DataFrame) -> dict[str, Any]:
    """Load and predict in a new interpreter with pickle disabled; its peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        rows.to_parquet(path, index=False)
        src = str(Path(__file__).resolve().parents[2])  # the directory holding hpo/
        env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS, str(model_dir), str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=120,
        )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"loads_without_unpickling": False, "error": tail[0]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "loads_without_unpickling": out["rows"] == len(rows) and not out["heavy_modules"],
        "modules_imported": out["heavy_modules"],
        "peak_memory_bytes": _bytes(out["peak_kib"]),
        "memory_after_imports_bytes": _bytes(out["imports_kib"]),
    }


def measure_inference(
    model_dir: Path, graph: ExportGraph, rows: pd.DataFrame, seed: int = 0
) -> dict[str, Any]:
    """Latency for one row and throughput at batch 1024: end to end from raw rows
    (preprocessing + onnxruntime), the ONNX model alone, and torch eager (baseline)."""
    model = load_model(model_dir, threads=1)
    rng = np.random.default_rng(seed)
    batch = rows.iloc[rng.integers(0, len(rows), BATCH)].reset_index(drop=True)
    singles = [rows.iloc[[i % len(rows)]] for i in range(ONE_ROW_CALLS)]
    single_inputs = [model.features(r) for r in singles]
    batch_inputs = model.features(batch)
    names = list(batch_inputs)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        graph = graph.cpu().eval()

        def torch_call(feed: dict[str, np.ndarray]) -> None:
            with torch.inference_mode():
                graph(*(torch.as_tensor(feed[n]) for n in names))

        one_row = {
            "end_to_end": _percentiles(_time_calls(model.predict, singles)),
            "onnx_model": _percentiles(_time_calls(model.run, single_inputs)),
            "torch_baseline": _percentiles(_time_calls(torch_call, single_inputs)),
        }
        batches = {
            "end_to_end": _time_calls(model.predict, [batch] * BATCH_CALLS, warmup=2),
            "onnx_model": _time_calls(model.run, [batch_inputs] * BATCH_CALLS, warmup=2),
            "torch_baseline": _time_calls(torch_call, [batch_inputs] * BATCH_CALLS, warmup=2),
        }
    finally:
        torch.set_num_threads(saved_threads)
    rows_per_s = {k: float(BATCH / np.median(v)) for k, v in batches.items()}
    fresh = fresh_process_check(model_dir, batch)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 thread used",
        "one_row_latency": one_row,
        "rows_per_s_batch_1024": rows_per_s,
        "onnx_vs_torch_one_row_speedup": one_row["torch_baseline"]["p50_ms"]
        / one_row["onnx_model"]["p50_ms"],
        "onnx_vs_torch_batch_speedup": rows_per_s["onnx_model"] / rows_per_s["torch_baseline"],
        "model_size_bytes": (model_dir / ONNX_FILE).stat().st_size,
        "preprocessing_size_bytes": (model_dir / PREPROCESSING_FILE).stat().st_size,
        **fresh,
    }
