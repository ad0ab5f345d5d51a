"""The disk fills up in the middle of a real `hpo sweep`: one line naming the file and the
fix, and the run directory stays resumable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo.sweep.resume import resume_sweep

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = dict(os.environ, PYTHONPATH=str(SRC))
SWEEP = ["data=iris", "cv.folds=2", "trainer.max_epochs=4", "budget.num_samples=3"]


def test_a_full_disk_mid_sweep_is_one_line_and_the_run_resumes(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    rows = run_dir / "trials.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo", "sweep", *SWEEP, "scheduler=fifo", "cluster.num_cpus=1",
         "budget.max_concurrent_trials=1", f"run_dir={run_dir}"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (rows.exists() and rows.read_text().count('"event": "result"') >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    # From now on the driver's next write of trials.jsonl fails with ENOSPC, as on a full
    # disk (/dev/full); the rows so far are kept aside and put back once "space is freed".
    os.rename(rows, run_dir / "kept.jsonl")
    rows.symlink_to("/dev/full")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{rows}: No space left on device; the disk is full" in lines[0]
    assert f"hpo resume {run_dir}" in lines[0] and "Traceback" not in out

    rows.unlink()
    os.rename(run_dir / "kept.jsonl", rows)
    result = resume_sweep(run_dir, stream=None)
    assert result.trials["trial_id"].nunique() == 3
    assert sum(result.counts.values()) == 3 and result.counts["failed"] == 0
