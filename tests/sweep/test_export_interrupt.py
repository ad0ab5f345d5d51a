"""A real `hpo sweep` is killed during its export, and the `hpo resume` after it is
interrupted (Ctrl-C) during its own: best/ is never left half-written for `hpo predict`,
and the next `hpo resume` exports again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
TINY = ["data=iris", "cv.folds=2", "trainer.max_epochs=2", "budget.num_samples=2"]


def hpo(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def cut_short(proc: subprocess.Popen, staging: Path, signum, left_over: Path | None = None):
    """Send ``signum`` to ``proc``'s process group once its export has begun (its staging
    folder exists and, when a killed export left one, ``left_over`` in it is gone: the
    export made the folder afresh); its stderr."""
    try:
        deadline = time.monotonic() + 240
        while not staging.exists() or (left_over is not None and left_over.exists()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.02)
        os.killpg(proc.pid, signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return err


def test_an_export_cut_short_leaves_no_best_dir_and_resume_exports_again(tmp_path):
    """SIGKILL during `hpo sweep`'s export, then Ctrl-C during `hpo resume`'s export of
    the same run (over the staging folder the kill left), then a `hpo resume` that
    finishes: one sweep for both signals and both commands' exports."""
    run_dir, staging = tmp_path / "run", tmp_path / "run" / "best.partial"
    sweep = hpo("sweep", *TINY, "scheduler=fifo", "cluster.num_cpus=1", f"run_dir={run_dir}")
    cut_short(sweep, staging, signal.SIGKILL)
    assert sweep.returncode == -signal.SIGKILL
    assert not (run_dir / "best").exists()
    predict = hpo("predict", str(staging), "-o", str(tmp_path / "p.csv"))
    _, err = predict.communicate(timeout=120)
    assert predict.returncode == 2 and "not a complete export" in err

    left_over = staging / "left-by-the-kill"  # gone once resume's export starts afresh
    left_over.write_text("")
    resume = hpo("resume", str(run_dir))
    err = cut_short(resume, staging, signal.SIGINT, left_over)
    assert resume.returncode == 130, err
    assert f"export it with: hpo resume {run_dir}" in err.strip().splitlines()[-1]
    assert not (run_dir / "best").exists()

    resume = hpo("resume", str(run_dir))
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert (run_dir / "best" / "complete.json").is_file() and "exported model" in out
    assert not staging.exists()
