"""The sweep's progress display, driven by the shared real sweep's own events (its
trials.jsonl, in the order the driver saw them) as Tune's callbacks would deliver them:
the live table on a terminal (rich, rendered to a forced terminal), one line per trial end
elsewhere; the counts are true at every step."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from hpo.sweep.asha import SuccessiveHalving
from hpo.sweep.progress import ProgressReporter

pytestmark = pytest.mark.slow


def replay(reporter: ProgressReporter, events: list[dict], check) -> None:
    """Feed the events to the reporter as Tune's callbacks; ``check(expected)`` after
    each, with the counts computed from the events so far."""
    started, ended = set(), {}
    for event in events:
        trial = SimpleNamespace(
            trial_id=event["trial_id"],
            experiment_tag=f"{event['trial_index']}_x",
            config=event.get("params") or {},
        )
        kind = event["event"]
        if kind == "start":
            started.add(trial.trial_id)
            reporter.on_trial_start(0, [], trial)
        elif kind == "result":
            reporter.on_trial_result(0, [], trial, event)
        elif kind == "end":
            ended[trial.trial_id] = event["status"]
            if event["status"] == "failed":
                reporter.on_trial_error(0, [], trial)
            else:
                reporter.on_trial_complete(0, [], trial)
        statuses = list(ended.values())
        expected = {s: statuses.count(s) for s in ("completed", "stopped", "failed")}
        expected["running"] = len(started - set(ended))
        check(expected)


def read_events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def final_counts(run_dir) -> dict[str, int]:
    per_trial = pd.read_parquet(run_dir / "trials.parquet").groupby("trial_id")["status"].last()
    return {s: int((per_trial == s).sum()) for s in ("completed", "stopped", "failed")}


def test_live_table_on_a_terminal(messy_run):
    _, run_dir = messy_run
    events = read_events(run_dir)
    screen = io.StringIO()
    reporter = ProgressReporter(None, "val_loss", "min", 3, screen, live=True)

    def check(expected):  # two trials side by side show as two
        assert reporter.counts() == expected

    replay(reporter, events, check)
    from rich.console import Console

    frame = io.StringIO()
    console = Console(file=frame, force_terminal=True, width=200)
    # a trial in flight: the table lists it with its epoch, fold-mean metric and rung
    asha = SuccessiveHalving("val_loss", "min", max_t=4, grace_period=1, reduction_factor=3)
    for event in events:
        asha.on_trial_add(None, SimpleNamespace(trial_id=event["trial_id"]))
    middle = ProgressReporter(None, "val_loss", "min", 3, io.StringIO(), asha, live=False)
    first_end = next(i for i, e in enumerate(events) if e["event"] == "end")
    replay(middle, events[:first_end], lambda expected: None)
    console.print(middle.render())
    shown = frame.getvalue()
    assert f"running {len(middle.active)}" in shown and "completed 0" in shown
    assert middle.active  # (a trial in flight)
    for trial_id in middle.active:
        record = middle.trials[trial_id]
        row = next(ln for ln in shown.splitlines() if ln.startswith(f"{record.index} {trial_id}"))
        if record.value is None:  # started, no epoch reported yet
            assert record.epoch == 0 and " - " in row
            continue
        assert str(record.epoch) in row and f"{record.value:.4f}" in row
        reached = 1 if record.epoch < 3 else 2  # milestones: epochs 1 and 3
        assert f"{reached}/2 (epoch {[1, 3][reached - 1]})" in row
    reporter.close()
    counts = final_counts(run_dir)
    out = screen.getvalue()
    assert "\x1b[" in out  # a live display: cursor movement, not lines
    out = " ".join(out.split())  # (the summary line wraps at the console's width)
    assert (
        f"completed {counts['completed']} | stopped {counts['stopped']} | failed "
        f"{counts['failed']} | running 0" in out
    )
    best = json.loads((run_dir / "best_trial.json").read_text())
    assert f"best val_loss {best['cv_mean']:.4f} (trial {best['trial_id']})" in out


def test_one_line_per_trial_end_off_a_terminal(messy_run):
    _, run_dir = messy_run
    events = read_events(run_dir)
    log = io.StringIO()  # not a terminal
    reporter = ProgressReporter(None, "val_loss", "min", 3, log)
    replay(reporter, events, lambda expected: None)
    lines = log.getvalue().splitlines()
    ends = [e for e in events if e["event"] == "end"]
    assert len(lines) == len(ends) and "\x1b[" not in log.getvalue()
    for n, (line, end) in enumerate(zip(lines, ends), 1):
        assert line.startswith(f"[  {n}/3]") and f"trial {end['trial_id']} {end['status']}" in line
    counts = final_counts(run_dir)
    assert f"completed {counts['completed']} | stopped {counts['stopped']}" in lines[-1]
    assert "running 0" in lines[-1]


def test_a_resumed_sweep_counts_the_trials_before_it(messy_run, tmp_path):
    """Built on a run directory, the reporter starts from its recorded trials."""
    _, run_dir = messy_run
    reporter = ProgressReporter(run_dir, "val_loss", "min", 3, io.StringIO())
    expected = final_counts(run_dir)
    assert reporter.counts() == {**expected, "running": 0}
    assert reporter.time_left() is None  # no trial ended in this session yet
