"""A Lightning-path sweep whose driver is SIGKILLed mid-trial, then `hpo resume`d: each fold
of the trial in flight continues from its last Lightning checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hpo.sweep.resume import resume_sweep

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]
BUDGET, EPOCHS = 3, 4
SWEEP = [
    "model=lightning", "model._target_=lightning_models.LitDigits",
    "data=lightning", "data._target_=lightning_models.NoTestDigits",
    "data.batch_size=8",  # slow epochs, so that the kill lands inside a trial
    "model.lr=tag(log, interval(1e-3, 1e-1))", "metric=val_acc", "mode=max", "cv.folds=3",
    f"trainer.max_epochs={EPOCHS}", f"trainer.patience={EPOCHS}", f"budget.num_samples={BUDGET}",
    "budget.max_concurrent_trials=1", "scheduler.grace_period=1", "scheduler.reduction_factor=2",
    "cluster.num_cpus=1",
    "trainer.checkpoint_interval_s=0",  # a checkpoint every epoch: at most one lost
]  # fmt: skip


def rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def in_flight(events: list[dict]) -> str | None:
    done = {r["trial_id"] for r in events if r["event"] == "end"}
    counts: dict[str, int] = {}
    for r in events:
        if r["event"] == "result" and r["trial_id"] not in done:
            counts[r["trial_id"]] = counts.get(r["trial_id"], 0) + 1
    return next((t for t, n in counts.items() if n >= 2), None)


def snapshot_whole(run_dir: Path) -> bool:
    """Tune's newest experiment snapshot in the run directory is whole: Tune copies it
    there from its staging folder in place, in a thread, after each trial checkpoint, and
    a driver killed during that copy leaves it torn, which `hpo resume` reports as damaged
    (tests/sweep/test_resume_verify.py). This test is about a kill between snapshots."""
    states = sorted((run_dir / "tune").glob("experiment_state-*.json"))
    if not states:
        return False
    try:
        json.loads(states[-1].read_text())
    except ValueError:
        return False
    session = states[-1].name.removeprefix("experiment_state-").removesuffix(".json")
    others = list((run_dir / "tune").glob(f"*-state*-{session}.pkl"))
    return bool(others) and all(p.stat().st_size > 0 for p in others)


def test_a_killed_lightning_sweep_resumes_each_fold_from_its_checkpoint(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    with (tmp_path / "sweep.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hpo", "sweep", *SWEEP, f"run_dir={run_dir}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (in_flight(rows(run_dir)) and snapshot_whole(run_dir)):
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the sweep did not get far enough in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = rows(run_dir)
    flying = in_flight(before)
    epochs_before = [
        r["epoch"] for r in before if r["event"] == "result" and r["trial_id"] == flying
    ]

    resume_sweep(run_dir, stream=None)
    after = rows(run_dir)
    assert after[: len(before)] == before
    resumed = [
        r for r in after[len(before) :] if r["event"] == "result" and r["trial_id"] == flying
    ]
    if resumed:  # (unless its last epoch was reported before the kill)
        # from its last checkpoint (every epoch here), not from epoch 1
        assert resumed[0]["epoch"] in (epochs_before[-1], epochs_before[-1] + 1)
        assert resumed[0]["epoch"] > 1
    frame = pd.read_parquet(run_dir / "trials.parquet")
    assert frame["trial_id"].nunique() == BUDGET
    assert set(frame["status"]) <= {"completed", "stopped"}
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    flown = frame[frame["trial_id"] == flying].sort_values("epoch")
    assert list(flown["epoch"]) == list(range(1, len(flown) + 1))  # no epoch lost
