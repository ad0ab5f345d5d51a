"""`hpo status RUN_DIR` and `hpo compare` on the shared real sweep (finished, exported),
on an interrupted copy of it (what a killed driver leaves: no trials.parquet, no
best_trial.json, no best/, a trial started and never ended), and on a running one (its
lock held by a live process)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from hpo.cli import main
from hpo.rundir import RunDirectory
from hpo.sweep.lock import claim_run_dir

pytestmark = pytest.mark.slow


def hpo(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def interrupt_copy(run_dir: Path, target: Path) -> tuple[Path, str]:
    """A copy of a finished run as its driver's death would leave it after the first
    results of its last trial: the trial that ended last never ended, and nothing of the
    sweep's end is there. Returns the copy and that trial's id."""
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("best", "run.lock"))
    for name in ("trials.parquet", "best_trial.json"):
        (target / name).unlink()
    events = [json.loads(line) for line in (target / "trials.jsonl").read_text().splitlines()]
    last = [e for e in events if e["event"] == "end"][-1]["trial_id"]
    kept, seen = [], 0
    for event in events:
        if event["trial_id"] == last and event["event"] == "end":
            continue
        if event["trial_id"] == last and event["event"] == "result":
            seen += 1
            if seen > 1:
                continue
        kept.append(event)
    (target / "trials.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
    return target, last


@pytest.fixture(scope="module")
def interrupted(messy_run, tmp_path_factory):
    _, run_dir = messy_run
    return interrupt_copy(run_dir, tmp_path_factory.mktemp("interrupted") / "run")


def test_status_of_a_finished_run(messy_run):
    _, run_dir = messy_run
    code, out, err = hpo("status", str(run_dir))
    assert code == 0, err
    frame = pd.read_parquet(run_dir / "trials.parquet")
    best = json.loads((run_dir / "best_trial.json").read_text())
    per_trial = frame.groupby("trial_id")["status"].last()
    assert "state: finished, exported to best/" in out
    counts = {s: int((per_trial == s).sum()) for s in ("completed", "stopped", "failed")}
    assert (
        f"{len(per_trial)}/3 trials ended: {counts['completed']} completed, "
        f"{counts['stopped']} stopped by asha, {counts['failed']} failed;" in out
    )
    assert f"best so far: val_loss {best['cv_mean']:.4f}, trial {best['trial_id']}" in out
    for key in best["params"]:
        assert f"  {key} = " in out and key in out.split("trials:")[1]
    report = json.loads((run_dir / "best" / "report.json").read_text())
    assert f"accuracy {report['test']['accuracy']:.4f}" in out
    table = out.split("trials:\n")[1].splitlines()
    assert len([line for line in table if line.split()[1:2] and line.split()[1] in per_trial])
    assert "hpo resume" not in out  # nothing to finish


def test_status_of_an_interrupted_run_names_the_resume_command(interrupted):
    run_dir, unfinished = interrupted
    code, out, err = hpo("status", str(run_dir))
    assert code == 0, err
    assert "state: interrupted" in out
    assert "2/3 trials ended" in out and "1 unfinished" in out
    row = next(line for line in out.splitlines() if f" {unfinished} " in line)
    assert "running" in row.split() and row.split()[3] == "1"  # one epoch reported
    assert out.rstrip().endswith(f"to finish it: hpo resume {run_dir}")


def test_status_of_a_running_sweep_names_its_process(interrupted, tmp_path):
    run_dir, _ = interrupted
    lock = claim_run_dir(run_dir, "hpo resume")  # this process is the live holder
    try:
        code, out, err = hpo("status", str(run_dir))
    finally:
        lock.release()
    assert code == 0, err
    import os

    assert f"state: running (`hpo resume`, pid {os.getpid()}" in out
    assert "hpo resume" not in out.split("state:")[1].split("\n", 1)[1]  # not told to resume
    assert "state: interrupted" in hpo("status", str(run_dir))[1]  # released: interrupted


def test_status_reads_a_uri(messy_run):
    _, run_dir = messy_run
    code, out, err = hpo("status", run_dir.as_uri())
    assert code == 0, err
    assert f"run directory: {run_dir.as_uri()}" in out and "state: finished" in out
    assert out.split("progress:")[1] == hpo("status", str(run_dir))[1].split("progress:")[1]


def test_compare_two_runs_table_and_curves(messy_run, interrupted, tmp_path):
    _, finished = messy_run
    stopped, _ = interrupted
    png = tmp_path / "compare.png"
    code, out, err = hpo("compare", str(finished), str(stopped), "--output", str(png))
    assert code == 0, err
    best = json.loads((finished / "best_trial.json").read_text())
    line = next(line for line in out.splitlines() if line.startswith("best CV score"))
    assert f"val_loss {best['cv_mean']:.4f}" in line and line.count("val_loss") == 2
    report = json.loads((finished / "best" / "report.json").read_text())
    line = next(line for line in out.splitlines() if line.startswith("test accuracy"))
    assert line.split()[2:] == [f"{report['test']['accuracy']:.4g}", "-"]  # no export yet
    state = next(ln for ln in out.splitlines() if ln.startswith("state"))
    assert state.split()[1:] == ["finished", "interrupted"]
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600
    # the curves end at each run's best (the sweep's own selection for the finished one)
    info = RunDirectory.open(finished)
    from hpo.run_state import read_run_info

    assert read_run_info(info.root).curve.best[-1] == pytest.approx(best["cv_mean"])

    code, _, err = hpo("compare", str(finished), str(stopped), "--output", str(png))
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err
    page = tmp_path / "compare.html"
    code, _, err = hpo("compare", str(finished), str(stopped), "-o", str(page))
    assert code == 0, err
    text = page.read_text()
    assert "data:image/png;base64," in text and f"{best['cv_mean']:.4f}" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["status", "{tmp}/missing"], "is not a directory"),
        (["status", "{tmp}"], "is not a run directory (no config.yaml)"),
        (["compare", "{tmp}/missing", "{tmp}"], "is not a directory"),
        (["compare", "{tmp}"], "give two or more run directories"),
        (["compare", "{tmp}", "{tmp}", "--output", "{tmp}/x.pdf"], "write a .png or an .html"),
    ],
)
def test_bad_run_directories_fail_with_one_line(tmp_path, args, message):
    code, out, err = hpo(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith("hpo: error: ") and not out
