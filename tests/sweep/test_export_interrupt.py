"""A real `hpo sweep` is interrupted (Ctrl-C) or killed during its export: best/ is never
left half-written for `hpo predict`, and `hpo resume` exports again."""

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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_an_export_cut_short_leaves_no_best_dir_and_resume_exports_again(tmp_path, signum):
    run_dir = tmp_path / "run"
    sweep = hpo("sweep", *TINY, "scheduler=fifo", "cluster.num_cpus=1", f"run_dir={run_dir}")
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "best.partial").exists():  # the export has begun
            assert sweep.poll() is None, sweep.communicate()
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.02)
        os.killpg(sweep.pid, signum)
        _, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    if signum == signal.SIGINT:
        assert sweep.returncode == 130, err
        assert f"export it with: hpo resume {run_dir}" in err.strip().splitlines()[-1]
    assert not (run_dir / "best").exists()
    predict = hpo("predict", str(run_dir / "best.partial"), "-o", str(tmp_path / "p.csv"))
    _, err = predict.communicate(timeout=120)
    assert predict.returncode == 2 and "not a complete export" in err

    resume = hpo("resume", str(run_dir))
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert (run_dir / "best" / "complete.json").is_file() and "exported model" in out
    assert not (run_dir / "best.partial").exists()
