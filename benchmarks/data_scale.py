"""Data at scale: a 1,000,000-row, 50-column Parquet file loaded, checked and preprocessed.

    python benchmarks/data_scale.py            # 1M rows x 50 columns, 5 folds
    python benchmarks/data_scale.py --rows 100000

Generates the file (in row groups, so generation memory stays small), then measures in
fresh processes, each with its own peak RSS:

- baseline: pyarrow reads the file into pandas and nothing else;
- hpo: ``load_table`` (pyarrow, chosen columns) -> ``inspect_data`` (cleaning and every
  quality check, the test split) -> ``build_folds`` (per-fold preprocessing fit on the
  train part, chunked transform into float32 arrays: what trials get).

Wall and CPU times are reported with their ratio to the baseline read, since timings on
a shared machine are noisy (CPU time is the steadier one); memory with its ratio to the data hpo must hold at the end (the
cleaned table plus every fold's arrays). Writes benchmarks/results/data_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "data_scale.json"
ROW_GROUP = 100_000
CITIES = [f"city_{i:02d}" for i in range(20)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def generate(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """A messy customer-like table: a text customer id, floats (some with gaps), integers, text
    categories (one spelled several ways, one with gaps), a boolean, a numeric column
    stored as text with a few strays, and a yes/no target."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n_float = columns - 14  # customer id, 5 ints, 5 categories, bool, income_text, target
    writer = None
    rng = np.random.default_rng(seed)
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        data: dict[str, object] = {
            "customer_id": np.array([f"C{i:07d}" for i in range(start, start + n)], dtype=object)
        }
        floats = rng.normal(size=(n, n_float))
        for j in range(n_float):
            col = floats[:, j].copy()
            if j < 6:
                col[rng.random(n) < 0.05] = np.nan
            data[f"f{j:02d}"] = col
        for j in range(5):
            data[f"i{j}"] = rng.integers(0, 10 * (j + 1), n)
        city = np.array(CITIES, dtype=object)[rng.integers(0, len(CITIES), n)]
        odd = rng.random(n) < 0.01
        city[odd] = [c.upper() + " " for c in city[odd]]
        data["city"] = city
        for j, k in enumerate((3, 5, 8, 12)):
            cat = np.array([f"c{j}_{v}" for v in range(k)], dtype=object)[rng.integers(0, k, n)]
            if j == 0:
                cat[rng.random(n) < 0.03] = None
            data[f"cat{j}"] = cat
        data["member"] = rng.random(n) < 0.3
        income = np.round(rng.normal(50_000, 15_000, n), 2).astype(str).astype(object)
        income[rng.random(n) < 0.001] = "unknown"
        data["income_text"] = income
        signal = floats[:, 0] + floats[:, 1] - data["member"] + rng.normal(size=n)
        data["target"] = np.where(np.nan_to_num(signal) > 0, "yes", "no")
        batch = pa.table(data)
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch)
    writer.close()


def run_baseline(path: str) -> dict:
    import pyarrow.parquet as pq

    pq.read_table(path, columns=["i0"])  # warm pyarrow's thread pool and the page cache
    started, cpu = time.perf_counter(), time.process_time()
    frame = pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)
    wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "frame_mb": round(frame.memory_usage(deep=True).sum() / 2**20, 1),
    }


def run_hpo(path: str, folds: int) -> dict:
    from hpo.config import compose_config
    from hpo.data.prepare import build_folds, inspect_data
    from hpo.data.sources import load_table

    cfg, _ = compose_config(
        ["data=parquet", f"data.path={path}", "data.target=target", f"cv.folds={folds}"]
    )
    import pyarrow.parquet as pq

    pq.read_table(path, columns=["i0"])  # the same warm-up as the baseline's
    stages = {"import": {"peak_rss_mb": round(_peak_rss_mb(), 1)}}
    clock = [time.perf_counter(), time.process_time()]

    def stage() -> dict:
        wall, cpu = time.perf_counter() - clock[0], time.process_time() - clock[1]
        clock[:] = [time.perf_counter(), time.process_time()]
        return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb()}

    table = load_table(cfg.data)
    stages["load"] = stage()
    prepared = inspect_data(cfg, table)
    del table
    stages["checks"] = stage()
    prepared = build_folds(prepared, cfg)
    stages["preprocess"] = stage()
    arrays = sum(
        a.nbytes
        for f in prepared.trial_data.folds
        for a in (f.X_train, f.X_val, f.y_train, f.y_val)
    )
    for numbers in stages.values():
        numbers.update({k: round(v, 1 if k == "peak_rss_mb" else 3) for k, v in numbers.items()})
    report = prepared.quality
    return {
        "stages": stages,
        "wall_s": round(sum(s.get("wall_s", 0) for s in stages.values()), 3),
        "cpu_s": round(sum(s.get("cpu_s", 0) for s in stages.values()), 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "cleaned_frame_mb": round(prepared.features.memory_usage(deep=True).sum() / 2**20, 1),
        "fold_arrays_mb": round(arrays / 2**20, 1),
        "features_out": prepared.trial_data.input_dim,
        "rows_used": len(prepared.y),
        "checks_found": {c.name: c.count for c in report.checks if c.status != "ok"},
    }


def _child(kind: str, path: Path, folds: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--path",
        str(path),
        "--folds",
        str(folds),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--child", choices=["baseline", "hpo"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (
            run_baseline(args.path) if args.child == "baseline" else run_hpo(args.path, args.folds)
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.parquet"
        started = time.perf_counter()
        generate(path, args.rows, args.columns)
        generated = time.perf_counter() - started
        baseline = _child("baseline", path, args.folds)
        hpo = _child("hpo", path, args.folds)
        file_mb = path.stat().st_size / 2**20
    held = hpo["cleaned_frame_mb"] + hpo["fold_arrays_mb"]
    result = {
        "rows": args.rows,
        "columns": args.columns,
        "folds": args.folds,
        "file_mb": round(file_mb, 1),
        "generate_s": round(generated, 2),
        "baseline_read": baseline,
        "hpo": hpo,
        "ratios": {
            "hpo_wall_over_baseline_read": round(hpo["wall_s"] / baseline["wall_s"], 2),
            "hpo_cpu_over_baseline_read": round(hpo["cpu_s"] / baseline["cpu_s"], 2),
            "hpo_load_over_baseline_read": round(
                hpo["stages"]["load"]["wall_s"] / baseline["wall_s"], 2
            ),
            "peak_rss_over_data_held": round(hpo["peak_rss_mb"] / held, 2),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "shared 2-core machine; timings are noisy, compare the ratios",
        },
        "git_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    stages = hpo["stages"]
    print(
        f"{args.rows:,} rows x {args.columns} columns, {file_mb:.0f} MiB Parquet, {args.folds} folds"
    )
    print(f"{'step':<28}{'wall s':>9}{'CPU s':>9}{'peak RSS MiB':>14}")
    print(
        f"{'baseline: pyarrow read':<28}{baseline['wall_s']:>9.2f}{baseline['cpu_s']:>9.2f}{baseline['peak_rss_mb']:>14.0f}"
    )
    for name in ("load", "checks", "preprocess"):
        print(
            f"{'hpo: ' + name:<28}{stages[name]['wall_s']:>9.2f}{stages[name]['cpu_s']:>9.2f}{stages[name]['peak_rss_mb']:>14.0f}"
        )
    print(
        f"hpo total {hpo['wall_s']:.1f}s wall, {hpo['cpu_s']:.1f}s CPU = "
        f"{result['ratios']['hpo_wall_over_baseline_read']}x / "
        f"{result['ratios']['hpo_cpu_over_baseline_read']}x the baseline read; peak RSS {hpo['peak_rss_mb']:.0f} MiB = "
        f"{result['ratios']['peak_rss_over_data_held']}x the data held at the end "
        f"({hpo['cleaned_frame_mb']:.0f} MiB table + {hpo['fold_arrays_mb']:.0f} MiB fold arrays)"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
