"""Resume: a real `hpo sweep` driver is SIGKILLed (or Ctrl-C'd) mid-way, then resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from hpo.sweep import run_sweep
from hpo.sweep.resume import resume_sweep
from hpo.sweep.runner import SweepInterrupted

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]

MAX_EPOCHS, GRACE, FACTOR = 6, 1, 2
SWEEP = [
    "data=iris",
    "cv.folds=3",
    f"trainer.max_epochs={MAX_EPOCHS}",
    f"trainer.patience={MAX_EPOCHS}",
    "trainer.batch_size=8",  # slower epochs, so the kill lands inside a trial
    "budget.max_concurrent_trials=1",  # one trial at a time: ASHA's order is the file's
    f"scheduler.grace_period={GRACE}",
    f"scheduler.reduction_factor={FACTOR}",
    "searcher.n_startup_trials=3",
    "cluster.num_cpus=1",
    "trainer.checkpoint_interval_s=0",  # a checkpoint every epoch: at most one lost
]


def start_sweep(run_dir: Path, *overrides: str) -> subprocess.Popen:
    """`hpo sweep` in its own session (like a terminal's job), writing into run_dir."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    log = (run_dir.parent / "sweep.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", "sweep", *SWEEP, *overrides, f"run_dir={run_dir}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the sweep's session (its embedded Ray's agents)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def ended(rows: list[dict]) -> dict[str, str]:
    return {r["trial_id"]: r["status"] for r in rows if r["event"] == "end"}


def wait_until(proc: subprocess.Popen, run_dir: Path, ready, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = events(run_dir)
        if ready(rows):
            return rows
        if proc.poll() is not None:
            log = (run_dir.parent / "sweep.log").read_text()
            pytest.fail(f"the sweep ended before the test could stop it:\n{log[-3000:]}")
        time.sleep(0.05)
    pytest.fail("the sweep did not get far enough in time")


def in_flight(rows: list[dict]) -> str | None:
    """A trial with at least two reported epochs that has not ended."""
    done = ended(rows)
    counts: dict[str, int] = {}
    for r in rows:
        if r["event"] == "result" and r["trial_id"] not in done:
            counts[r["trial_id"]] = counts.get(r["trial_id"], 0) + 1
    return next((t for t, n in counts.items() if n >= 2), None)


def replay_asha(rows: list[dict]) -> dict[str, int]:
    """Ray's own ASHA bracket fed every result in the order the driver saw them, as one
    uninterrupted sweep would: trial -> the epoch at which it says STOP."""
    bracket = _Bracket(GRACE, MAX_EPOCHS, FACTOR, 0)
    stops, seen = {}, set()
    for r in rows:
        key = (r["trial_id"], r.get("epoch"))
        if r["event"] != "result" or key in seen or r["epoch"] >= MAX_EPOCHS:
            continue
        seen.add(key)
        action = bracket.on_result(
            SimpleNamespace(trial_id=r["trial_id"]), r["epoch"], -r["val_loss"]
        )
        if action == TrialScheduler.STOP:
            stops.setdefault(r["trial_id"], r["epoch"])
    return stops


def test_resume_after_sigkill_keeps_finished_trials_searcher_and_asha_rungs(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    budget = 7
    proc = start_sweep(run_dir, f"budget.num_samples={budget}")
    try:
        before = wait_until(proc, run_dir, lambda rows: len(ended(rows)) >= 2 and in_flight(rows))
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait(timeout=30)
    finally:
        kill_session(proc)
    before = events(run_dir)  # everything written before the kill
    done_before = ended(before)
    flying = in_flight(before)
    assert 2 <= len(done_before) < budget and flying

    resumed_at = time.monotonic()
    result = resume_sweep(run_dir, stream=None)
    resume_s = time.monotonic() - resumed_at
    after = events(run_dir)
    assert after[: len(before)] == before  # rows are only appended
    new_rows = after[len(before) :]

    # Finished trials are kept, not run again; the finished count only grows.
    done_after = ended(after)
    assert {t: done_after[t] for t in done_before} == done_before
    assert not [r for r in new_rows if r["event"] == "result" and r["trial_id"] in done_before]
    assert len(done_after) == budget

    # The trial in flight continued from its checkpoint, not from epoch 1.
    epochs_before = [
        r["epoch"] for r in before if r["event"] == "result" and r["trial_id"] == flying
    ]
    epochs_after = [
        r["epoch"] for r in new_rows if r["event"] == "result" and r["trial_id"] == flying
    ]
    if epochs_after:  # (unless its last epoch was in before the kill)
        assert epochs_after[0] in (epochs_before[-1], epochs_before[-1] + 1)
        assert epochs_after[0] > 1

    # The run directory holds the whole budget, once each.
    frame = pd.read_parquet(run_dir / "trials.parquet")
    assert frame["trial_id"].nunique() == budget
    assert sorted(frame.drop_duplicates("trial_id")["trial_index"]) == list(range(1, budget + 1))
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    assert set(frame["status"]) <= {"completed", "stopped"}

    # The searcher kept its history: one Optuna trial per Tune trial, told as recorded.
    status = frame.groupby("trial_id")["status"].last()
    # (a trial asked just after Tune's last snapshot never ran: it is told FAIL, "orphan")
    orphans = [t for t in result.study.trials if t.user_attrs.get("hpo_status") == "orphan"]
    assert all(t.state == TrialState.FAIL for t in orphans)
    states = [t.state for t in result.study.trials if t not in orphans]
    assert len(states) == budget
    assert states.count(TrialState.COMPLETE) == (status == "completed").sum()
    assert states.count(TrialState.PRUNED) == (status == "stopped").sum()
    best_per_trial = frame.groupby("trial_id")["val_loss"].min()
    complete_values = sorted(t.value for t in result.study.trials if t.state == TrialState.COMPLETE)
    assert complete_values == pytest.approx(sorted(best_per_trial[status == "completed"]))

    # ASHA kept its rungs: every pre-kill record is still there, with its value ...
    rungs = result.extra["asha_rungs"]
    # (Epochs the in-flight trial ran again after the resume, from its last checkpoint,
    # carry the re-run's values: the kill came before Tune's snapshot of them.)
    rerun = set(epochs_after[:1] and range(epochs_after[0], epochs_before[-1] + 1))
    for r in before:
        if r["trial_id"] == flying and r.get("epoch") in rerun:
            continue
        if r["event"] == "result" and r["epoch"] in rungs:
            assert rungs[r["epoch"]].get(r["trial_id"]) == pytest.approx(r["val_loss"])
    # ... and its decisions after the resume are those of one uninterrupted sweep.
    stopped_at = frame[frame.status == "stopped"].groupby("trial_id")["epoch"].max().to_dict()
    assert replay_asha(after) == stopped_at
    print(
        f"\nresume: {len(done_before)}/{budget} trials finished before the SIGKILL, trial "
        f"{flying} in flight at epoch {epochs_before[-1]} went on at epoch "
        f"{epochs_after[0] if epochs_after else '-'}; after resume {len(done_after)}/{budget} "
        f"(resume took {resume_s:.0f}s)"
    )


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_hpo_resume_finishes(
    ray_local, small_cfg, tmp_path
):
    run_dir = tmp_path / "run"
    budget = 4
    cfg = small_cfg(*SWEEP, f"budget.num_samples={budget}", "tracking=mlflow")

    def checkpointed_unfinished_trials() -> list[Path]:
        """Unfinished trials with three epochs' checkpoints written (so Tune has
        registered one); at a URI, trials.jsonl arrives only as trials end."""
        done = ended(events(run_dir))
        return [
            d
            for d in (run_dir / "tune").glob("trial_*")
            if d.name.removeprefix("trial_") not in done and any(d.glob("checkpoint_00000[2-9]"))
        ]

    def press_ctrl_c_inside_the_second_trial() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if ended(events(run_dir)) and checkpointed_unfinished_trials():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_inside_the_second_trial, daemon=True)
    presser.start()
    # The run directory is a URI: pyarrow's file:// stands in for s3:// or gs://.
    uri = f"file://{run_dir}"
    with pytest.raises(SweepInterrupted) as interrupted:
        run_sweep(cfg, run_dir=uri, stream=None)
    presser.join()
    assert f"hpo resume {uri}" in str(interrupted.value)
    before = events(run_dir)  # uploaded when the sweep stopped
    assert 1 <= len(ended(before)) < budget
    (trial_dir,) = checkpointed_unfinished_trials()
    flying = trial_dir.name.removeprefix("trial_")
    last_epoch = max(
        r["epoch"] for r in before if r["event"] == "result" and r["trial_id"] == flying
    )

    # What a driver killed between Tune's registering a checkpoint (which deletes the
    # previous ones) and its next snapshot leaves: only the checkpoint of the last
    # recorded epoch (folder index = epoch - 1), while the snapshot may name an older
    # one. (Newer folders, written but not yet registered, stay as they would.)
    for folder in trial_dir.glob("checkpoint_*"):
        if int(folder.name.split("_")[1]) < last_epoch - 1:
            shutil.rmtree(folder)
    assert (trial_dir / f"checkpoint_{last_epoch - 1:06d}").is_dir()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    resumed = subprocess.run(
        [sys.executable, "-m", "hpo", "resume", uri],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"trials: {budget} " in resumed.stdout
    assert (run_dir / "trials.parquet").exists() and (run_dir / "best_trial.json").exists()
    after = events(run_dir)
    done = ended(after)
    assert len(done) == budget and set(done.values()) <= {"completed", "stopped"}
    # the interrupted trial went on from its (recreated) checkpoint
    went_on = [
        r["epoch"]
        for r in after[len(before) :]
        if r["event"] == "result" and r["trial_id"] == flying
    ]
    assert not went_on or went_on[0] == last_epoch + 1
    for trial_id, status in ended(before).items():
        assert done[trial_id] == status
        assert not [
            r for r in after[len(before) :] if r["event"] == "result" and r["trial_id"] == trial_id
        ]
    # MLflow (tracking=mlflow, its store in the run directory): the resume went on with the
    # same parent run and the interrupted trial's own child run.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs(["1"], max_results=100)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED" and "best_trial_id" in parent.data.tags
    children = {r.data.tags["trial_id"]: r for r in runs if r is not parent}
    assert set(children) == set(done) and children[flying].info.status != "RUNNING"
    steps = {m.step for m in client.get_metric_history(children[flying].info.run_id, "val_loss")}
    epochs = [r["epoch"] for r in after if r["event"] == "result" and r["trial_id"] == flying]
    assert steps == set(epochs)  # before and after the interrupt
