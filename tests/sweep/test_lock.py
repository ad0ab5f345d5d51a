"""One sweep per run directory: real processes hold and contend for RUN_DIR/run.lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo.errors import HPOError
from hpo.sweep.lock import LOCK_FILE, claim_run_dir, release_run_dir

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
HOLD = (
    "import sys, time; from hpo.sweep.lock import claim_run_dir; "
    "claim_run_dir(sys.argv[1], 'hpo sweep'); print('held', flush=True); time.sleep(600)"
)


def hold_in_child(run_dir: Path) -> subprocess.Popen:
    """Another process that claims ``run_dir`` and keeps it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_run_dir_is_refused_naming_its_holder_and_freed_when_the_holder_dies(tmp_path):
    holder = hold_in_child(tmp_path)
    try:
        with pytest.raises(HPOError) as refused:
            claim_run_dir(tmp_path, "hpo sweep")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "`hpo sweep`" in message
        assert str(tmp_path) in message and "\n" not in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The dead holder's file is still there, naming it; the lock is free again.
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == holder.pid
    lock = claim_run_dir(tmp_path, "hpo resume")
    try:
        assert claim_run_dir(tmp_path, "hpo resume") is lock  # this process: one claim
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        release_run_dir(tmp_path)
    hold_in_child(tmp_path).kill()  # released: another process can take it


@pytest.mark.slow
def test_a_second_hpo_sweep_on_a_busy_run_dir_fails_at_once(tmp_path):
    run_dir = tmp_path / "run"
    sweep = [sys.executable, "-m", "hpo", "sweep", "data=iris", "cv.folds=2"]
    first = subprocess.Popen(
        [*sweep, "trainer.max_epochs=50", "cluster.num_cpus=1", f"run_dir={run_dir}"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "config.yaml").exists():
            assert first.poll() is None and time.monotonic() < deadline, "first sweep ended"
            time.sleep(0.1)
        config_before = (run_dir / "config.yaml").read_text()
        started = time.monotonic()
        second = subprocess.run(
            [*sweep, "seed=99", f"run_dir={run_dir}"], env=ENV, capture_output=True, text=True
        )
        took = time.monotonic() - started
        assert first.poll() is None, "the first sweep must still be running"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and second.stdout == ""
    assert f"is in use by `hpo sweep` (pid {first.pid}" in lines[0]
    assert took < 60  # no Ray started: data preparation and the refusal only
    assert (run_dir / "config.yaml").read_text() == config_before  # nothing of the second
