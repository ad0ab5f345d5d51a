"""Resume verifies before it trusts: one real sweep, interrupted with Ctrl-C after two of
its three trials, copied once per damage; each copy is resumed (or refused) for real.

Damages: trials.jsonl cut mid-way, deleted, or broken in the middle (rebuilt in place,
checked without a resume run); the scheduler's state file deleted or damaged; Tune's experiment or searcher state missing or truncated;
the run directory moved or copied (the old one gone)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from hpo.config import compose_config
from hpo.errors import HPOError
from hpo.sweep import run_sweep
from hpo.sweep.lock import release_run_dir
from hpo.sweep.resume import resume_sweep
from hpo.sweep.runner import SweepInterrupted
from hpo.sweep.storage import RunLocation
from hpo.sweep.verify import verify_run

pytestmark = pytest.mark.slow

BUDGET = 4  # two left when Ctrl-C comes after two ended: a loaded machine cannot finish first
SWEEP = [
    "data=iris",
    "cv.folds=2",
    "trainer.max_epochs=3",
    "trainer.patience=3",
    f"budget.num_samples={BUDGET}",
    "budget.max_concurrent_trials=1",
    "scheduler.grace_period=1",
    "scheduler.reduction_factor=2",
    "searcher.n_startup_trials=2",
    "cluster.num_cpus=1",
    "trainer.checkpoint_interval_s=0",  # a checkpoint every epoch
]


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def ends(events: list[dict]) -> dict[str, str]:
    return {r["trial_id"]: r["status"] for r in events if r["event"] == "end"}


def metric_by_epoch(events: list[dict]) -> dict[tuple[str, int], float]:
    return {(r["trial_id"], r["epoch"]): r["val_loss"] for r in events if r["event"] == "result"}


@pytest.fixture(scope="module")
def interrupted(ray_local, tmp_path_factory) -> Path:
    """A sweep stopped by Ctrl-C once two trials ended (Tune saved its state)."""
    run_dir = tmp_path_factory.mktemp("verify") / "run"
    cfg, _ = compose_config([*SWEEP, f"output_dir={run_dir.parent / 'runs'}"])

    def press_ctrl_c_after_two_trials() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            path = run_dir / "trials.jsonl"
            if path.exists() and path.read_text().count('"event": "end"') >= 2:
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_after_two_trials, daemon=True)
    presser.start()
    with pytest.raises(SweepInterrupted):
        run_sweep(cfg, run_dir=run_dir, stream=None)
    presser.join()
    assert len(ends(rows(run_dir))) >= 2
    return run_dir


def copy_of(interrupted: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted, run_dir)
    return run_dir


def resumed(run_dir: Path) -> tuple[object, str]:
    out = io.StringIO()
    result = resume_sweep(run_dir, stream=out)
    release_run_dir(result.run_dir)
    return result, out.getvalue()


def assert_finished_with_every_earlier_trial(result, before: list[dict]) -> None:
    """The budget reached; every trial that ended before, kept with its status and its
    metric at every epoch; nothing twice."""
    frame = pd.read_parquet(result.run_dir / "trials.parquet")
    assert frame["trial_id"].nunique() == BUDGET
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    assert sum(result.counts.values()) == BUDGET and result.counts["running"] == 0
    status = frame.groupby("trial_id")["status"].last()
    for trial_id, state in ends(before).items():
        assert status[trial_id] == state
    now = metric_by_epoch(rows(result.run_dir))
    for key, value in metric_by_epoch(before).items():
        if key[0] in ends(before):
            assert now[key] == pytest.approx(value)
    # ASHA's rungs hold every earlier trial's record again (rebuilt from trials.jsonl)
    rungs = result.extra["asha_rungs"]
    for (trial_id, epoch), value in metric_by_epoch(before).items():
        if epoch in rungs and trial_id in ends(before):
            assert rungs[epoch][trial_id] == pytest.approx(value)


def cut_mid_way(run_dir: Path) -> None:
    path = run_dir / "trials.jsonl"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete_rows_and_scheduler_state(run_dir: Path) -> None:
    (run_dir / "trials.jsonl").unlink()
    for path in (run_dir / "tune").glob("callback-states-*.pkl"):
        path.unlink()


def cut_mid_way_and_damage_the_scheduler_state(run_dir: Path) -> None:
    cut_mid_way(run_dir)
    for state in (run_dir / "tune").glob("callback-states-*.pkl"):
        state.write_bytes(state.read_bytes()[:20])


def break_a_middle_line(run_dir: Path) -> int:
    path = run_dir / "trials.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    middle = len(lines) // 2
    lines[middle] = lines[middle][:25] + "\n"
    path.write_text("".join(lines))
    return middle + 1


def move(old: Path, new: Path) -> None:
    old.rename(new)


def copy_and_delete(old: Path, new: Path) -> None:
    shutil.copytree(old, new)
    shutil.rmtree(old)


# (Each resume runs the sweep's last trial: the damages share resumes to keep CI short.)
@pytest.mark.parametrize(
    "damage, rebuilt, relocate",
    [
        (cut_mid_way_and_damage_the_scheduler_state, "was cut", move),
        (delete_rows_and_scheduler_state, "trials.jsonl is missing", copy_and_delete),
    ],
    ids=["cut-and-moved", "deleted-and-copied"],
)
def test_resume_rebuilds_lost_rows_from_tunes_state_and_the_study(
    interrupted, tmp_path, damage, rebuilt, relocate
):
    run_dir = copy_of(interrupted, tmp_path)
    before = rows(run_dir)
    damage(run_dir)
    # the run directory moved or copied, the old one gone
    old, run_dir = run_dir, tmp_path / "elsewhere" / "run"
    run_dir.parent.mkdir()
    relocate(old, run_dir)
    result, said = resumed(run_dir)
    assert "hpo: verified Ray Tune's experiment state" in said
    assert "hpo: rebuilt trials.jsonl (" in said and rebuilt in said
    assert f"{len(ends(before))} of {BUDGET} trials finished" in said
    assert "hpo: rebuilt scheduler=asha's records from trials.jsonl" in said
    assert "missing (rebuilt" in said or "damaged (" in said  # (its state file)
    assert_finished_with_every_earlier_trial(result, before)
    # the new trial went to the new place, nothing to the old
    assert not old.exists()
    assert len(list((run_dir / "tune").glob("trial_*"))) == BUDGET


def test_a_broken_middle_line_is_rebuilt_in_its_place_before_any_ray_work(interrupted, tmp_path):
    run_dir = copy_of(interrupted, tmp_path)
    before = rows(run_dir)
    line = break_a_middle_line(run_dir)
    report = verify_run(RunLocation(run_dir), "val_loss", ("val_loss",))
    (rebuilt,) = report.rebuilt
    assert f"(line {line} is not a JSON row): 1 rows of 1 trials" in rebuilt
    after = rows(run_dir)
    assert after[line - 1].pop("rebuilt") in ("optuna_journal.log", "optuna_journal.log+tune")
    lost = before[line - 1]
    if lost["event"] == "result" and after[line - 1].keys() != lost.keys():
        # an earlier epoch: the study kept its metric only
        assert after[line - 1]["val_loss"] == pytest.approx(lost["val_loss"])
        after[line - 1], before[line - 1] = {}, {}
    assert after == before
    assert (run_dir / "trials.jsonl.damaged").exists()


def drop(pattern: str):
    def damage(run_dir: Path) -> None:
        for path in (run_dir / "tune").glob(pattern):
            path.unlink()

    return damage


def truncate(pattern: str):
    def damage(run_dir: Path) -> None:
        for path in (run_dir / "tune").glob(pattern):
            path.write_bytes(path.read_bytes()[:30])

    return damage


@pytest.mark.parametrize(
    "damage, named, cause",
    [
        (
            drop("experiment_state-*.json"),
            "experiment_state-*.json is missing",
            "trials ended per trials.jsonl",
        ),
        (truncate("experiment_state-*.json"), "experiment_state-", "JSONDecodeError"),
        (drop("search_gen_state-*.json"), "search_gen_state-", "is missing"),
        (truncate("searcher-state-*.pkl"), "searcher-state-", "is damaged"),
    ],
    ids=["no-experiment-state", "cut-experiment-state", "no-searcher-state", "cut-searcher"],
)
def test_a_missing_or_damaged_tune_state_is_one_error_naming_the_file(
    interrupted, tmp_path, damage, named, cause
):
    run_dir = copy_of(interrupted, tmp_path)
    damage(run_dir)
    with pytest.raises(HPOError) as refused:
        resume_sweep(run_dir, stream=None)
    release_run_dir(run_dir)
    message = str(refused.value)
    assert named in message and cause in message and "\n" not in message
    assert str(run_dir) in message
