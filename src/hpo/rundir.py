"""One owner for the run directory: the name of every file a sweep writes there, and how
to read them back (``hpo status``, ``hpo compare``, the export, the report, resume).

    RUN_DIR/
      config.yaml          the resolved config (CONFIG)
      data_quality.json    the data checks (DATA_QUALITY)
      trials.jsonl         every event of every trial, as it arrived (ROWS)
      trials.parquet       one row per reported epoch, written at the end (TRIALS)
      best_trial.json      the best trial, written at the end (BEST_TRIAL)
      optuna_journal.log   the searcher's Optuna study, JournalStorage (JOURNAL)
      run.lock             flock'ed by the sweep that owns the directory (LOCK)
      ray_tune.log         Ray Tune's own log lines (TUNE_LOG)
      tune/                Ray Tune's experiment folder: trials, checkpoints, the
                           experiment snapshot and the scheduler's state (TUNE)
      tensorboard/         event files per trial (TENSORBOARD)
      best/                the exported best trial (BEST, files in BestFiles),
                           staged in best.partial (STAGING) and sealed by complete.json

Layering: beside hpo.paths (no Ray, no torch); pandas and OmegaConf are imported by the
readers that need them.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.errors import HPOError

CONFIG = "config.yaml"
DATA_QUALITY = "data_quality.json"
ROWS = "trials.jsonl"
TRIALS = "trials.parquet"
BEST_TRIAL = "best_trial.json"
JOURNAL = "optuna_journal.log"
LOCK = "run.lock"
TUNE_LOG = "ray_tune.log"
TUNE = "tune"
TUNER_STATE = "tuner.pkl"  # in tune/, written by Ray Tune when the Tuner is built
TUNE_SNAPSHOT_PREFIX = "experiment_state-"  # in tune/: Tune's experiment snapshots
TENSORBOARD = "tensorboard"
MLFLOW_STATE = "mlflow_run.json"  # tracking=mlflow: URI, experiment, parent and child run ids
MLFLOW_STORE = "mlflow.db"  # tracking=mlflow's default store (SQLite)
MLFLOW_ARTIFACTS = "mlartifacts"
BEST = "best"
STAGING_SUFFIX = ".partial"
STAGING = BEST + STAGING_SUFFIX


class BestFiles:
    """The files of an export, ``RUN_DIR/best/``."""

    MANIFEST = "model.json"
    PREPROCESSING = "preprocessing.json"
    ONNX = "model.onnx"
    CHECKPOINT = "model.ckpt"  # the Lightning path's model
    CONFIG = "config.yaml"  # the best trial's own config
    EXPORT = "export.json"
    TEST_PREDICTIONS = "test_predictions.parquet"
    REPORT_JSON = "report.json"
    REPORT_HTML = "report.html"
    PLOTS = "plots"
    COMPLETE = "complete.json"  # written last: the export is sealed (hpo.export.staging)


# trial statuses in trials.jsonl (hpo.sweep.recorder writes them)
RUNNING, COMPLETED, STOPPED, FAILED = "running", "completed", "stopped", "failed"
# the driver's files a URI run directory holds beside tune/ (what `open` downloads)
_READ_FILES = (CONFIG, DATA_QUALITY, ROWS, TRIALS, BEST_TRIAL)


@dataclass
class TrialRecord:
    """One trial as trials.jsonl tells it (each (trial, epoch) once, at its last value)."""

    trial_id: str
    index: int
    status: str = RUNNING
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0  # the last reported epoch
    value: float | None = None  # ``metric`` at the last reported epoch
    best: float | None = None  # the best ``metric`` over its epochs
    best_epoch: int | None = None
    error: str | None = None
    time_s: float = 0.0  # the trial's own training time so far
    curve: list[tuple[int, float, float | None]] = field(default_factory=list)
    """(epoch, metric, timestamp) per reported epoch, in arrival order."""


def better(a: float, b: float | None, mode: str) -> bool:
    """``a`` beats ``b`` (None: anything beats it) under ``mode`` (min | max)."""
    return b is None or (a < b if mode == "min" else a > b)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def trial_records(events: list[dict], metric: str, mode: str) -> dict[str, TrialRecord]:
    """trial_id -> its TrialRecord, in creation order, from trials.jsonl's events."""
    trials: dict[str, TrialRecord] = {}
    for row in events:
        tid = row.get("trial_id")
        if tid is None:
            continue
        trial = trials.setdefault(tid, TrialRecord(tid, int(row.get("trial_index", -1))))
        trial.params = row.get("params") or trial.params
        event = row.get("event")
        if event == "result":
            add_result(trial, row, metric, mode)
        elif event == "end":
            trial.status, trial.error = row.get("status", trial.status), row.get("error")
    return dict(sorted(trials.items(), key=lambda item: item[1].index))


def add_result(trial: TrialRecord, row: dict, metric: str, mode: str) -> None:
    """Fold one result row into ``trial`` (an epoch seen again after a resume replaces
    its earlier value, as in trials.parquet)."""
    epoch = int(row.get("epoch") or 0)
    value = _finite(row.get(metric))
    trial.curve = [point for point in trial.curve if point[0] != epoch]
    trial.curve.append((epoch, value, _finite(row.get("timestamp"))))
    trial.epoch, trial.value = epoch, value
    trial.time_s = float(row.get("time_total_s") or trial.time_s)
    trial.best, trial.best_epoch = None, None
    for e, v, _ in trial.curve:
        if v is not None and better(v, trial.best, mode):
            trial.best, trial.best_epoch = v, e


def best_record(trials: dict[str, TrialRecord], mode: str) -> TrialRecord | None:
    """The best trial so far (a failed trial never is, as in hpo.sweep.results)."""
    best = None
    for trial in trials.values():
        if trial.status != FAILED and trial.best is not None:
            if best is None or better(trial.best, best.best, mode):
                best = trial
    return best


def status_counts(trials: dict[str, TrialRecord]) -> dict[str, int]:
    statuses = [t.status for t in trials.values()]
    return {s: statuses.count(s) for s in (COMPLETED, STOPPED, FAILED, RUNNING)}


@dataclass(frozen=True)
class RunDirectory:
    """A run directory: the path of each of its files, and readers for them.

    Args:
        root: the local directory (for a URI, the local copy ``open`` made).
        uri: the run directory's URI, when it lives at one.
    """

    root: Path
    uri: str | None = None

    @property
    def display(self) -> str:
        """The run directory as the user names it."""
        return self.uri or str(self.root)

    config = property(lambda self: self.root / CONFIG)
    data_quality = property(lambda self: self.root / DATA_QUALITY)
    rows = property(lambda self: self.root / ROWS)
    trials = property(lambda self: self.root / TRIALS)
    best_trial = property(lambda self: self.root / BEST_TRIAL)
    journal = property(lambda self: self.root / JOURNAL)
    lock = property(lambda self: self.root / LOCK)
    tune = property(lambda self: self.root / TUNE)
    tensorboard = property(lambda self: self.root / TENSORBOARD)
    best = property(lambda self: self.root / BEST)
    staging = property(lambda self: self.root / STAGING)

    def best_file(self, name: str) -> Path:
        """A file of the export (a ``BestFiles`` name)."""
        return self.best / name

    @classmethod
    def open(cls, where: str | Path) -> RunDirectory:
        """An existing run directory, to read: a path, or a URI pyarrow's filesystems
        open (``file://``, ``s3://``, ...), whose driver files (not ``tune/``) and
        ``best/report.json`` are copied to a temporary folder first.

        Raises:
            HPOError: nothing is there, or it holds no ``config.yaml``.
        """
        if "://" in str(where):
            run = cls(_download(str(where).rstrip("/")), str(where).rstrip("/"))
        else:
            path = Path(where).expanduser()
            if not path.is_dir():
                raise HPOError(
                    f"{where} is not a directory; pass the run directory that `hpo sweep` printed."
                )
            run = cls(path.resolve())
        if not run.config.is_file():
            raise HPOError(
                f"{run.display} is not a run directory (no {CONFIG}); pass the run "
                "directory that `hpo sweep` printed."
            )
        return run

    def read_config(self):
        """The resolved config the sweep saved (an OmegaConf DictConfig, as written)."""
        from omegaconf import OmegaConf

        return OmegaConf.load(self.config)

    def read_events(self) -> list[dict]:
        """trials.jsonl's events in order (a half-written last line is left out)."""
        if not self.rows.is_file():
            return []
        events = []
        for line in self.rows.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a driver killed mid-write
                events.append(json.loads(line))
        return events

    def read_json(self, path: Path) -> dict | None:
        """A JSON file of the run (None: absent).

        Raises:
            HPOError: it is there but cannot be read or parsed.
        """
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise HPOError(
                f"{path} cannot be read ({exc}); it was damaged: restore it, or run "
                "`hpo resume` (or `hpo report`) to write it again."
            ) from exc

    def read_best_trial(self) -> dict | None:
        return self.read_json(self.best_trial)

    def read_report(self) -> dict | None:
        """``best/report.json``: the exported model's test metrics (None: not exported)."""
        return self.read_json(self.best_file(BestFiles.REPORT_JSON))

    def read_trials(self):
        """trials.parquet as a DataFrame (written when the sweep finished)."""
        import pandas as pd

        return pd.read_parquet(self.trials)

    def started_at(self) -> float | None:
        """When the sweep started (config.yaml is written first; Unix seconds)."""
        return self.config.stat().st_mtime if self.config.is_file() else None

    def last_event_at(self) -> float | None:
        """When trials.jsonl was last written (Unix seconds)."""
        return self.rows.stat().st_mtime if self.rows.is_file() else None

    def is_exported(self) -> bool:
        return self.best_file(BestFiles.COMPLETE).is_file()

    def has_search_state(self) -> bool:
        """Tune's experiment snapshot and the study's journal: what resume needs."""
        snapshots = self.tune.glob(f"{TUNE_SNAPSHOT_PREFIX}*") if self.tune.is_dir() else ()
        return any(True for _ in snapshots) and self.journal.is_file()

    def lock_holder(self) -> dict | None:
        """Who holds the run's lock, when a live process does (hpo.sweep.lock); None
        when nobody does, or for a URI (object stores have no locks)."""
        if self.uri or not self.lock.is_file():
            return None
        try:
            fd = os.open(self.lock, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            with contextlib.suppress(HPOError):  # (a holder still writing its name)
                return self.read_json(self.lock) or {}
            return {}
        finally:
            os.close(fd)  # (and with it the probe's own shared lock)
        return None


def _download(uri: str) -> Path:
    """Copy a URI run directory's driver files into a fresh temporary folder."""
    import pyarrow.fs as pafs

    try:
        fs, base = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow: ArrowInvalid / OSError for an unknown scheme
        raise HPOError(
            f"{uri}: pyarrow cannot open it ({exc}); pass a path or a URI of a filesystem "
            "pyarrow supports (file://, s3://, gs://, ...)."
        ) from exc
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        raise HPOError(f"{uri} does not exist; pass the run directory that `hpo sweep` printed.")
    local = Path(tempfile.mkdtemp(prefix="hpo-status-"))
    atexit.register(shutil.rmtree, local, ignore_errors=True)
    wanted = [*_READ_FILES, f"{BEST}/{BestFiles.REPORT_JSON}", f"{BEST}/{BestFiles.COMPLETE}"]
    try:
        for name in wanted:
            source = fs.get_file_info(f"{base}/{name}")
            if source.type == pafs.FileType.File:
                (local / name).parent.mkdir(parents=True, exist_ok=True)
                with fs.open_input_stream(source.path) as src, (local / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                if source.mtime is not None:  # the run's times come from them
                    stamp = source.mtime.timestamp()
                    os.utime(local / name, (stamp, stamp))
    except OSError as exc:
        raise HPOError(f"cannot read {uri}: {exc}") from exc
    return local
