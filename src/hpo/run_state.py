"""What a run directory says about its sweep, read through hpo.rundir alone: running,
interrupted or finished; the trials' progress against the budget; the best so far; the
exported model's test metrics; the best-so-far curves over wall time and over epochs.
``hpo status`` and ``hpo compare`` print it.

A sweep is *running* while a live process holds the run's lock (hpo.sweep.lock),
*finished* once it wrote trials.parquet with no trial left unfinished, and *interrupted*
otherwise. A run directory at a URI has no lock: unfinished there means running
elsewhere or interrupted, and both are said.

Layering: beside hpo.rundir (no Ray, no torch).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from hpo.rundir import (
    COMPLETED,
    FAILED,
    RUNNING,
    STOPPED,
    RunDirectory,
    TrialRecord,
    best_record,
    better,
    status_counts,
    trial_records,
)

STATE_RUNNING, STATE_INTERRUPTED, STATE_FINISHED = "running", "interrupted", "finished"
STATE_UNKNOWN = "unfinished"  # at a URI: running elsewhere or interrupted


@dataclass
class Curve:
    """The best ``metric`` so far, each time it improved: over the seconds since the
    sweep's first trial started, and over the epochs trained by all trials."""

    seconds: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    best: list[float] = field(default_factory=list)


@dataclass
class RunInfo:
    run: RunDirectory
    name: str
    metric: str
    mode: str
    budget: int | None  # budget.num_samples (None: the time budget decides)
    searcher: str
    scheduler: str
    state: str
    trials: dict[str, TrialRecord]
    counts: dict[str, int]
    best: TrialRecord | None
    exported: bool
    report: dict[str, Any] | None  # best/report.json
    curve: Curve
    wall_s: float | None
    epochs: int  # epochs trained by all trials together
    holder: dict[str, Any] | None = None  # who holds the lock (running)
    notes: list[str] = field(default_factory=list)

    @property
    def ended(self) -> int:
        return self.counts[COMPLETED] + self.counts[STOPPED] + self.counts[FAILED]

    @property
    def resume_command(self) -> str | None:
        """How to finish the sweep (None: nothing to finish)."""
        if self.state == STATE_RUNNING or (self.state == STATE_FINISHED and self.exported):
            return None
        if self.state == STATE_INTERRUPTED and not self.run.has_search_state():
            return None  # (a note says to sweep again)
        return f"hpo resume {shlex.quote(self.run.display)}"

    def test_metrics(self) -> dict[str, float]:
        """The exported model's held-out test metrics (report.json's ``test``)."""
        test = (self.report or {}).get("test") or {}
        # floats only: the counts beside them (rows, macro_classes) are not metrics
        return {k: v for k, v in test.items() if isinstance(v, float)}


def best_so_far(
    events: list[dict], metric: str, mode: str, failed: set[str], start: float | None
) -> Curve:
    """The best-so-far curve from trials.jsonl's results in arrival order, its times
    counted from ``start`` (Unix seconds; Ray's ``timestamp`` of a result is in whole
    seconds); a failed trial's values do not count (it is never the best), an epoch
    reported again after a resume counts once."""
    curve, seen, best = Curve(), set(), None
    results = [r for r in events if r.get("event") == "result"]
    for row in results:
        key = (row.get("trial_id"), row.get("epoch"))
        if key in seen:
            continue
        seen.add(key)
        value = row.get(metric)
        if row.get("trial_id") in failed or not isinstance(value, (int, float)):
            continue
        if value == value and better(float(value), best, mode):  # (NaN never improves)
            best = float(value)
            stamp = row.get("timestamp")
            known = start is not None and isinstance(stamp, (int, float))
            curve.seconds.append(max(float(stamp) - start, 0.0) if known else float("nan"))
            curve.epochs.append(len(seen))
            curve.best.append(best)
    return curve


def _wall_seconds(run: RunDirectory, events: list[dict], state: str) -> float | None:
    """From the sweep's start to its last result (trials.jsonl's last write for a run
    from before results carried a timestamp; now while it runs); a resumed sweep's
    pause counts."""
    start = run.started_at()
    stamps = [r["timestamp"] for r in events if isinstance(r.get("timestamp"), (int, float))]
    end = max(stamps) if stamps else run.last_event_at()
    if state == STATE_RUNNING:
        end = time.time()
    return None if start is None or end is None else max(end - start, 0.0)


def _epochs(events: list[dict]) -> int:
    """Epochs trained by all trials together (an epoch reported again counts once)."""
    return len({(r.get("trial_id"), r.get("epoch")) for r in events if r.get("event") == "result"})


def _state(run: RunDirectory, counts: dict[str, int]) -> tuple[str, dict | None]:
    holder = run.lock_holder()
    if holder is not None:
        return STATE_RUNNING, holder
    if run.trials.is_file() and counts[RUNNING] == 0:
        return STATE_FINISHED, None
    return (STATE_UNKNOWN if run.uri else STATE_INTERRUPTED), None


def read_run_info(where) -> RunInfo:
    """Everything ``hpo status`` shows about the run directory ``where`` (path or URI).

    Raises:
        HPOError: it is missing, or not a run directory.
    """
    run = RunDirectory.open(where)
    cfg = run.read_config()
    metric, mode = str(cfg.get("metric", "val_loss")), str(cfg.get("mode", "min"))
    events = run.read_events()
    trials = trial_records(events, metric, mode)
    counts = status_counts(trials)
    state, holder = _state(run, counts)
    failed = {t for t, record in trials.items() if record.status == FAILED}
    budget = (cfg.get("budget") or {}).get("num_samples")
    info = RunInfo(
        run=run,
        name=str(cfg.get("name", run.root.name)),
        metric=metric,
        mode=mode,
        budget=int(budget) if budget else None,
        searcher=str((cfg.get("searcher") or {}).get("name", "?")),
        scheduler=str((cfg.get("scheduler") or {}).get("name", "?")),
        state=state,
        trials=trials,
        counts=counts,
        best=best_record(trials, mode),
        exported=run.is_exported(),
        report=run.read_report(),
        curve=best_so_far(events, metric, mode, failed, run.started_at()),
        wall_s=_wall_seconds(run, events, state),
        epochs=_epochs(events),
        holder=holder,
    )
    info.notes += _notes(info)
    return info


def _notes(info: RunInfo) -> list[str]:
    run, notes = info.run, []
    if info.state == STATE_UNKNOWN:
        notes.append(
            f"{run.display} is at a URI, which has no lock: the sweep is either running "
            "elsewhere or was interrupted."
        )
    if info.state == STATE_FINISHED and not info.exported:
        notes.append(
            "the best trial was not exported (the export was interrupted or failed): "
            f"`hpo resume {shlex.quote(run.display)}` exports it."
        )
    if info.state == STATE_INTERRUPTED and not run.has_search_state():
        notes.append(
            "the sweep stopped before its search state was saved (no tune/ snapshot or "
            "study journal): run `hpo sweep` again rather than resume."
        )
    return notes
