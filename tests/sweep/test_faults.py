"""Faults inside trials on a real local Ray: a worker process dies, a trial raises, a loss
turns NaN. The sweep records each and goes on."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from hpo.errors import HPOError
from hpo.space import build_search_space
from hpo.sweep import run_sweep
from hpo.sweep.runner import finish_sweep

pytestmark = pytest.mark.slow

# user_models.CrashOnce kills its worker once, then leaves this marker. Ray's workers get
# their environment when Ray starts, so it is set while the tests are collected, before
# any fixture starts Ray.
CRASH_MARKER = Path(tempfile.mkdtemp(prefix="hpo-crash-")) / "crashed"
os.environ["HPO_TEST_CRASH_MARKER"] = str(CRASH_MARKER)


def raw_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def test_a_killed_worker_is_retried_from_its_last_checkpoint(ray_local, user_model_cfg):
    crash_epoch = 3
    cfg = user_model_cfg(
        "user_models.CrashOnce",
        {"optim.lr": "choice(0.1)"},
        "budget.num_samples=1",
        "budget.max_retries=1",
        "scheduler=fifo",
        "trainer.checkpoint_interval_s=0",  # a checkpoint every epoch
        crash_epoch=crash_epoch,
    )
    result = run_sweep(cfg, stream=None)
    assert CRASH_MARKER.exists(), "the worker was never killed"
    assert result.counts == {"completed": 1, "stopped": 0, "failed": 0, "running": 0}
    rows = raw_events(result.run_dir)
    assert [r["event"] for r in rows].count("retry") == 1
    epochs = [r["epoch"] for r in rows if r["event"] == "result"]
    # Every epoch reported once, in order: the retry went on from the checkpoint of the
    # epoch before the crash instead of starting again at epoch 1.
    assert epochs == list(range(1, max(epochs) + 1))
    assert max(epochs) >= crash_epoch
    retry_at = [i for i, r in enumerate(rows) if r["event"] == "retry"][0]
    first_after = next(r["epoch"] for r in rows[retry_at:] if r["event"] == "result")
    assert first_after == crash_epoch
    pids = {r["pid"] for r in rows if r["event"] == "result"}
    assert len(pids) == 2  # before and after the crash: two worker processes


def test_raising_and_diverging_trials_are_recorded_and_the_sweep_goes_on(ray_local, user_model_cfg):
    # A grid over both keys: lr=5 turns the loss NaN, width=-1 makes the module's
    # constructor raise (torch refuses a negative dimension); one trial of four is healthy.
    cfg = user_model_cfg(
        "user_models.DivergingLinear",
        {"optim.lr": "choice(0.05, 5.0)", "model.width": "choice(8, -1)"},
        "searcher=grid",
        "scheduler=fifo",
        "budget.max_failure_rate=0.8",
        "budget.max_retries=2",  # for workers that die: these failures are not retried
        width=8,
    )
    result = run_sweep(cfg, stream=None)
    events = raw_events(result.run_dir)
    assert not [r for r in events if r["event"] == "retry"]
    starts = [r["trial_id"] for r in events if r["event"] == "start"]
    assert len(starts) == len(set(starts)) == 4  # each trial ran once
    # each failure's traceback is in the run directory's log, not on the terminal
    log = (result.run_dir / "ray_tune.log").read_text()
    for trial_id in {r["trial_id"] for r in events if r.get("status") == "failed"}:
        assert f"trial {trial_id} failed:\nTraceback" in log
    frame = result.trials
    per_trial = frame.groupby("trial_id").last()
    assert len(per_trial) == 4
    assert result.counts["completed"] == 1 and result.counts["failed"] == 3
    healthy = per_trial[per_trial.status == "completed"].iloc[0]
    assert (healthy["optim.lr"], healthy["model.width"]) == (0.05, 8)
    raised = per_trial[per_trial["model.width"] == -1]
    assert (raised.status == "failed").all()
    assert raised["error"].str.contains("negative dimension").all()
    diverged = per_trial[(per_trial["model.width"] == 8) & (per_trial["optim.lr"] == 5.0)]
    assert (diverged.status == "failed").all() and diverged["error"].str.contains("diverged").all()
    assert result.best["params"] == {"optim.lr": 0.05, "model.width": 8}

    # Past budget.max_failure_rate the same results fail the sweep, with the causes.
    cfg.budget.max_failure_rate = 0.5
    space, _ = build_search_space(cfg.search_space)
    with pytest.raises(HPOError) as failed:
        finish_sweep(cfg, result.run_dir, space, 0.0, None, None)
    message = str(failed.value)
    assert "3 of 4 trials failed" in message and "budget.max_failure_rate=0.5" in message
    assert "negative dimension" in message and "diverged" in message
