"""What a running sweep shows in the terminal, on the driver, as Tune's events arrive.

On a terminal (``stream.isatty()``): a live table (rich) of the running trials, each
with its epoch, fold-mean ``metric`` and ASHA rung, above the counts of completed /
stopped / failed / running trials, the best so far, the elapsed time and an estimate of
the time left. Anywhere else (CI, a log file, ``hpo logs``): one line per trial end, as
before. The counts are the trials' own: ``running`` counts the trials that have started
and not ended (two workers: two).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray.tune import Callback

from hpo.rundir import (
    COMPLETED,
    FAILED,
    RUNNING,
    STOPPED,
    RunDirectory,
    TrialRecord,
    add_result,
    best_record,
    status_counts,
    trial_records,
)
from hpo.sweep.recorder import trial_index
from hpo.train.trial import FINISHED_KEY

LIVE_ROWS = 20  # running trials listed in the live table (the counts cover all)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def rung_of(scheduler, trial_id: str, epoch: int) -> str:
    """The ASHA / Hyperband rung a trial has reached: ``k/n (milestone)``; ``-`` for a
    scheduler without rungs (hpo.sweep.asha.SuccessiveHalving has them)."""
    brackets = getattr(scheduler, "brackets", None)
    chosen = getattr(scheduler, "trial_bracket", {}).get(trial_id)
    if not brackets or chosen is None:
        return "-"
    milestones = sorted(milestone for milestone, _ in brackets[chosen].records)
    reached = [m for m in milestones if epoch >= m]
    if not reached:
        return f"0/{len(milestones)}"
    return f"{len(reached)}/{len(milestones)} (epoch {reached[-1]:g})"


class ProgressReporter(Callback):
    """A Tune callback on the driver: the live table on a terminal, lines elsewhere.

    Args:
        run_dir: the local run directory; a resumed sweep's earlier trials are read from
            its trials.jsonl, so the counts go on from them.
        metric, mode: the sweep's objective (what "best so far" means).
        num_samples: the trial budget.
        stream: where progress goes (None: silence).
        scheduler: the sweep's scheduler, for the rung column.
        live: force the live table on or off (None: on when ``stream`` is a terminal).
        time_budget_s: ``budget.time_budget_s``, which caps the estimate of the time left.
    """

    def __init__(
        self,
        run_dir,
        metric: str,
        mode: str,
        num_samples: int,
        stream=None,
        scheduler=None,
        live: bool | None = None,
        time_budget_s: float | None = None,
    ) -> None:
        self.metric, self.mode, self.num_samples = metric, mode, num_samples
        self.stream, self.scheduler = stream, scheduler
        self.time_budget_s = time_budget_s
        self.trials: dict[str, TrialRecord] = {}
        if run_dir is not None:
            self.trials = trial_records(RunDirectory(run_dir).read_events(), metric, mode)
        self.ended_before = sum(t.status != RUNNING for t in self.trials.values())
        self.active: set[str] = set()  # started in this session and not ended
        self.finished: dict[str, bool] = {}  # trial -> its last result said it finished
        self.started = time.monotonic()
        wants_live = stream is not None and getattr(stream, "isatty", lambda: False)()
        self.use_live = wants_live if live is None else (live and stream is not None)
        self._live = None

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into tuner.pkl; a stream and a live display stay here.
        return {**self.__dict__, "stream": None, "_live": None, "use_live": False}

    # Tune's events ------------------------------------------------------------------

    def on_trial_start(self, iteration, trials, trial, **info):
        self._record(trial)  # (a trial that ended before a resume keeps its first end)
        self.active.add(trial.trial_id)
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record = self._record(trial)
        add_result(record, result, self.metric, self.mode)
        self.finished[trial.trial_id] = bool(result.get(FINISHED_KEY))
        self.active.add(trial.trial_id)
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = COMPLETED if self.finished.get(trial.trial_id) else STOPPED
        self._end(trial, status)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, FAILED)

    def on_experiment_end(self, trials, **info):
        self.close()

    # state ------------------------------------------------------------------------

    def _record(self, trial) -> TrialRecord:
        record = self.trials.get(trial.trial_id)
        if record is None:
            record = TrialRecord(trial.trial_id, trial_index(trial), params=dict(trial.config))
            self.trials[trial.trial_id] = record
        return record

    def _end(self, trial, status: str) -> None:
        record = self._record(trial)
        self.active.discard(trial.trial_id)
        if record.status != RUNNING:  # ended already (before a resume): the first end stays
            self._refresh()
            return
        record.status = status
        if self.use_live:
            self._refresh()
        elif self.stream is not None:
            print(self.progress_line(record), file=self.stream, flush=True)

    def counts(self) -> dict[str, int]:
        counts = status_counts(self.trials)
        counts[RUNNING] = len(self.active)  # the trials running now, not the unfinished
        return counts

    def time_left(self) -> float | None:
        """Seconds left at this session's rate of trial ends (None: no end yet)."""
        elapsed = time.monotonic() - self.started
        counts = self.counts()
        ended = counts[COMPLETED] + counts[STOPPED] + counts[FAILED]
        now = ended - self.ended_before
        left = None
        if now > 0:
            left = max(self.num_samples - ended, 0) * elapsed / now
        if self.time_budget_s is not None:
            budget_left = max(float(self.time_budget_s) - elapsed, 0.0)
            left = budget_left if left is None else min(left, budget_left)
        return left

    # rendering ----------------------------------------------------------------------

    def summary_text(self) -> str:
        c = self.counts()
        ended = c[COMPLETED] + c[STOPPED] + c[FAILED]
        best = best_record(self.trials, self.mode)
        best_text = (
            f"best {self.metric} {best.best:.4f} (trial {best.trial_id})" if best else "best -"
        )
        return (
            f"[{ended:>3}/{self.num_samples}] completed {c[COMPLETED]} | stopped {c[STOPPED]} | "
            f"failed {c[FAILED]} | running {c[RUNNING]} | {best_text} | "
            f"elapsed {_duration(time.monotonic() - self.started)} | "
            f"left ~{_duration(self.time_left())}"
        )

    def progress_line(self, ended: TrialRecord) -> str:
        """The line printed off a terminal when ``ended`` ends."""
        how = f"{ended.status} at epoch {ended.epoch} ({self.metric} {_value(ended.value)})"
        return f"{self.summary_text()} | trial {ended.trial_id} {how}"

    def render(self):
        """The live table (a rich renderable)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=None, expand=False, show_edge=False, pad_edge=False)
        for name, justify in (
            ("trial", "left"),
            ("epoch", "right"),
            (f"{self.metric} (fold mean)", "right"),
            ("trial best", "right"),
            ("rung", "left"),
            ("params", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=name != "params")
        running = [self.trials[t] for t in sorted(self.active) if t in self.trials]
        running.sort(key=lambda t: t.index)
        for record in running[:LIVE_ROWS]:
            table.add_row(
                f"{record.index} {record.trial_id}",
                str(record.epoch),
                _value(record.value),
                _value(record.best),
                rung_of(self.scheduler, record.trial_id, record.epoch),
                ", ".join(f"{k}={_short(v)}" for k, v in record.params.items()),
            )
        more = len(running) - LIVE_ROWS
        parts: list[Any] = [Text(self.summary_text())]
        if running:  # (an empty table's header says nothing)
            parts.append(table)
        if more > 0:
            parts.append(Text(f"... and {more} more running"))
        return Group(*parts)

    def _refresh(self) -> None:
        if not self.use_live:
            return
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, force_terminal=True)
            # other output (Ray's log lines) goes above the table, not through it
            ours = self.stream is sys.stdout
            self._live = Live(
                get_renderable=self.render,
                console=console,
                refresh_per_second=2,
                redirect_stdout=ours,
                redirect_stderr=ours,
            )
            self._live.start()
        self._live.refresh()

    def close(self) -> None:
        """Stop the live table (it stays on screen, as it last was)."""
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
