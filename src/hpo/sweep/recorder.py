"""Records every reported epoch of every trial (trials.jsonl, then trials.parquet) and
prints one progress line per finished trial instead of Ray's own logs."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from hpo.train.trial import FAILED_KEY, FINISHED_KEY, TRACEBACK_KEY

# a trial's own traceback: to RUN_DIR/ray_tune.log with Ray Tune's (hpo.sweep.tune_log)
log = logging.getLogger("hpo.trials")

STATUS_COMPLETED = "completed"
STATUS_STOPPED = "stopped"  # by the scheduler (ASHA / HyperBand)
STATUS_FAILED = "failed"
STATUS_RUNNING = "running"  # only in a sweep that was interrupted

_KEEP = (
    "time_this_iter_s",
    "time_total_s",
    "timestamp",  # when the result arrived (Ray's, in whole seconds): curves over wall time
    "training_iteration",
    # where the trial ran: node_id tells apart Ray nodes that share one IP
    "node_ip",
    "hostname",
    "pid",
    "node_id",
    "device",
)


def trial_index(trial) -> int:
    """Tune's creation counter of a trial (its experiment tag starts with it)."""
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def recorded_fields(result: dict, keep=()) -> dict:
    """The fields of a Tune result that trials.jsonl keeps: hpo's metrics (``val_*``,
    ``train_*``, ``fold_*``), ``keep`` (a user's own metric names), epoch and placement."""
    return {
        key: value
        for key, value in result.items()
        if key.startswith(("val_", "train_", "fold_"))
        or key in keep
        or key in ("epoch", "folds_active", FINISHED_KEY, *_KEEP)
    }


def drop_partial_row(path: Path) -> None:
    """A driver killed mid-write leaves half a row at the end; drop it, so the file
    reads and appends stay valid."""
    text = Path(path).read_text() if Path(path).exists() else ""
    if text and not text.endswith("\n"):
        Path(path).write_text(text[: text.rfind("\n") + 1])


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


class TrialRecorder(Callback):
    """A Tune callback on the driver: appends rows to ``trials.jsonl`` as they arrive.

    A batch of epoch results (hpo.sweep.buffering) is written with one append at the end
    of Tune's step that took it (``on_step_end``); a trial's start, end or retry is
    written at once, after any epoch rows before it.

    Args:
        path: the JSON-lines file (appended to, so a resumed sweep keeps earlier rows).
        metric, mode: what "best so far" means in the progress line.
        num_samples: the trial budget, for the progress line.
        stream: where progress goes; None for silence.
        on_trial_end: called after each trial's end is written (e.g. to upload the file).
        metric_names: metrics the trials report under names of their own (a user's
            LightningModule's): kept with their ``_std`` and ``fold_`` columns.
    """

    def __init__(
        self,
        path: Path,
        metric: str,
        mode: str,
        num_samples: int,
        stream=sys.stdout,
        on_trial_end: Callable[[], None] | None = None,
        metric_names=(),
    ):
        self.path = Path(path)
        self.metric = metric
        self.mode = mode
        self.num_samples = num_samples
        self.stream = stream
        self.on_trial_end = on_trial_end
        self.keep = {f"{n}{suffix}" for n in metric_names for suffix in ("", "_std")}
        self.status: dict[str, str] = {}
        self.best: tuple[float, str] | None = None
        self.started = time.monotonic()
        self._last: dict[str, dict] = {}
        self._failed: dict[str, str] = {}  # trial -> why its own code failed (FAILED_KEY)
        self._ended: set[str] = set()  # trials whose end was written (before a resume too)
        self._running: set[str] = set()  # started and not ended: the progress line's count
        self._rows: list[str] = []  # epoch rows not yet written (until the step's end)
        self._load_existing()

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into tuner.pkl; a stream need not (and may not) go there.
        self.flush()
        return {**self.__dict__, "stream": None}

    def _load_existing(self) -> None:
        """Pick up where an interrupted sweep's rows left off (``hpo resume``)."""
        if not self.path.exists():
            return
        drop_partial_row(self.path)
        for line in self.path.read_text().splitlines():
            row = json.loads(line)
            if row.get("event") == "end":
                self.status[row["trial_id"]] = row["status"]
                self._ended.add(row["trial_id"])
            elif row.get("event") == "result":
                self._last[row["trial_id"]] = row
                self._track_best(row.get(self.metric), row["trial_id"])

    def _write(self, row: dict, now: bool = True) -> None:
        self._rows.append(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")
        if now:
            self.flush()

    def flush(self) -> None:
        """Append the rows not yet written."""
        if not self._rows:
            return
        try:
            with self.path.open("a") as handle:
                handle.write("".join(self._rows))
        except OSError as exc:  # a full disk: name the file (a failed flush does not)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        self._rows = []

    def on_step_end(self, iteration, trials, **info):
        self.flush()  # (and hpo.sweep.sweep.Sweep.run flushes when the run ends)

    def _track_best(self, value: Any, trial_id: str) -> None:
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        if self.best is None or (
            value < self.best[0] if self.mode == "min" else value > self.best[0]
        ):
            self.best = (float(value), trial_id)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.status.setdefault(trial.trial_id, STATUS_RUNNING)
        self._running.add(trial.trial_id)
        self._write(
            {
                "event": "start",
                "trial_id": trial.trial_id,
                "trial_index": trial_index(trial),
                "params": trial.config,
            }
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(FAILED_KEY):  # the trial's last report: no epoch, only why it failed
            self._failed[trial.trial_id] = str(result[FAILED_KEY])
            log.error("trial %s failed:\n%s", trial.trial_id, result.get(TRACEBACK_KEY, ""))
            return
        row = {
            "event": "result",
            "trial_id": trial.trial_id,
            "trial_index": trial_index(trial),
            "params": trial.config,
            **recorded_fields(result, self.keep),
        }
        self._last[trial.trial_id] = row
        self._write(row, now=False)
        self._track_best(result.get(self.metric), trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self._failed:  # (hpo.train.trial.failures_end_the_trial)
            self._end(trials, trial, STATUS_FAILED, self._failed.pop(trial.trial_id))
            return
        last = self._last.get(trial.trial_id) or {}
        status = STATUS_COMPLETED if last.get(FINISHED_KEY) else STATUS_STOPPED
        self._end(trials, trial, status, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trials, trial, STATUS_FAILED, error_text(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        """The trial's worker failed; Tune restarts it from its last checkpoint."""
        self._write(
            {
                "event": "retry",
                "trial_id": trial.trial_id,
                "trial_index": trial_index(trial),
                "error": error_text(trial),
                "params": trial.config,
            }
        )

    def _end(self, trials, trial, status: str, error: str | None) -> None:
        if trial.trial_id in self._ended:
            # Its end was recorded just before the driver died, after Tune's last
            # snapshot: Tune resumed it from its final checkpoint and it ended again.
            return
        self._ended.add(trial.trial_id)
        self._running.discard(trial.trial_id)
        self.status[trial.trial_id] = status
        self._write(
            {
                "event": "end",
                "trial_id": trial.trial_id,
                "trial_index": trial_index(trial),
                "status": status,
                "error": error,
                "params": trial.config,
            }
        )
        if self.stream is not None:
            print(self.progress_line(len(self._running)), file=self.stream, flush=True)
        if self.on_trial_end is not None:
            self.on_trial_end()

    def counts(self) -> dict[str, int]:
        values = list(self.status.values())
        return {s: values.count(s) for s in (STATUS_COMPLETED, STATUS_STOPPED, STATUS_FAILED)}

    def progress_line(self, running: int) -> str:
        c = self.counts()
        done = sum(c.values())
        best = f"best {self.metric} {self.best[0]:.4f} ({self.best[1]})" if self.best else "best -"
        return (
            f"[{done:>3}/{self.num_samples}] completed {c[STATUS_COMPLETED]} | stopped "
            f"{c[STATUS_STOPPED]} | failed {c[STATUS_FAILED]} | running {running} | {best} | "
            f"{time.monotonic() - self.started:.0f}s"
        )


def error_text(trial) -> str:
    path = getattr(trial, "error_file", None)
    if path:
        try:
            text = Path(path).read_text().strip().splitlines()
            return text[-1] if text else "unknown error"
        except OSError:
            pass
    return "unknown error"
