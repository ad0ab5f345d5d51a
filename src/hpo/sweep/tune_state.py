"""Ray Tune's saved state of a run, read and checked through Tune's public API (for
hpo.sweep.verify): the newest experiment snapshot (``tune.ExperimentAnalysis``), the
searcher's and the callbacks' state of the same snapshot (unpickled with
``ray.cloudpickle`` only to see that they are whole: resume unpickles them anyway, see
hpo.sweep.storage_trust)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from hpo.errors import HPOError
from hpo.sweep.recorder import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_STOPPED,
    error_text,
    trial_index,
)
from hpo.sweep.storage import RunLocation, tune_filesystem
from hpo.train.trial import FINISHED_KEY

EXPERIMENT_STATE = "experiment_state-{}.json"
SEARCHER_STATES = ("search_gen_state-{}.json", "searcher-state-{}.pkl")
CALLBACK_STATE = "callback-states-"  # Tune's callbacks' state: hpo's scheduler records
DAMAGED_SUFFIX = ".damaged"


def cause(exc: BaseException) -> str:
    """``Type: message``, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@dataclass
class TrialFacts:
    """What one record says about one trial."""

    trial_id: str
    index: int = -1
    params: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # None: not ended (as far as this record knows)
    error: str | None = None
    values: dict[int, float] = field(default_factory=dict)  # epoch -> the metric
    last: dict[str, Any] | None = None  # the last result, every recorded field


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """ExperimentAnalysis warns of the per-trial result files hpo turns off."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def newest_session(location: RunLocation) -> str | None:
    """The session suffix of Tune's newest experiment snapshot (the one it restores)."""
    fs, base = tune_filesystem(location)
    names = sorted(
        info.base_name
        for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        if info.base_name.startswith("experiment_state-") and info.base_name.endswith(".json")
    )
    return names[-1][len("experiment_state-") : -len(".json")] if names else None


def check_searcher_state(location: RunLocation, session: str) -> list[str]:
    """The searcher's state of Tune's newest snapshot is there and unpickles."""
    import ray.cloudpickle as cloudpickle

    fs, base = tune_filesystem(location)
    names = [template.format(session) for template in SEARCHER_STATES]
    for name in names:
        path = f"{base}/{name}"
        shown = f"{location.display}/tune/{name}"
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise HPOError(
                f"{shown} is missing: Ray Tune's searcher state of its last snapshot, without "
                "which the resumed sweep would create no more trials (or count them from an "
                "older snapshot); restore the file from a copy of the run directory, or start "
                "a new sweep (the finished trials stay in trials.jsonl and trials.parquet)."
            )
        try:
            with fs.open_input_stream(path) as handle:
                data = handle.readall()
            if name.endswith(".json"):
                cloudpickle.loads(data)
            elif data.lstrip()[:1] == b"{":
                json.loads(data)  # hpo's StudySearcher writes JSON
            else:
                cloudpickle.loads(data)
        except Exception as exc:  # truncated: EOFError, UnpicklingError, JSONDecodeError
            raise HPOError(
                f"{shown} is damaged ({cause(exc)}): Ray Tune cannot restore "
                "its searcher from it; restore the file from a copy of the run directory, or "
                "start a new sweep (the finished trials stay in trials.jsonl)."
            ) from exc
    return names


def check_scheduler_state(location: RunLocation, replays: bool) -> str | None:
    """Tune's newest callback state (the scheduler's records, saved with each snapshot).

    Resume rebuilds the records by replaying trials.jsonl and does not load them, but Tune
    still unpickles the file: a damaged one is set aside (``.damaged``) when the replay
    stands in for it, else reported. Returns what was found, for resume's report.
    """
    import ray.cloudpickle as cloudpickle

    fs, base = tune_filesystem(location)
    names = sorted(
        info.base_name
        for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        if info.base_name.startswith(CALLBACK_STATE) and info.base_name.endswith(".pkl")
    )
    if not names:
        return "missing (rebuilt from trials.jsonl)" if replays else None
    path = f"{base}/{names[-1]}"
    try:
        with fs.open_input_stream(path) as handle:
            cloudpickle.loads(handle.readall())
        return None
    except Exception as exc:
        if not replays:
            raise HPOError(
                f"{location.display}/tune/{names[-1]} is damaged ({cause(exc)}): Ray Tune cannot restore its callbacks' state; restore the file from "
                "a copy of the run directory."
            ) from exc
        fs.move(path, path + DAMAGED_SUFFIX)
        return f"damaged ({type(exc).__name__}; set aside as tune/{names[-1]}{DAMAGED_SUFFIX})"


def tune_facts(location: RunLocation, metric: str, finished: int) -> dict[str, TrialFacts]:
    """Tune's trials from its newest experiment snapshot. ``finished``: how many trials
    the other records say ended (for the message when the snapshot is gone)."""
    from ray.tune import ExperimentAnalysis

    session = newest_session(location)
    if session is None:
        raise HPOError(
            f"{location.display}/tune/{EXPERIMENT_STATE.format('*')} is missing: Ray Tune "
            f"cannot restore the sweep ({finished} trials ended per trials.jsonl and the "
            "study, kept there); restore the tune/ folder from a copy of the run directory, "
            "or start a new sweep."
        )
    shown = f"{location.display}/tune/{EXPERIMENT_STATE.format(session)}"
    fs, base = tune_filesystem(location)
    try:
        with _quiet("ray.tune.analysis.experiment_analysis"):
            analysis = ExperimentAnalysis(
                f"{base}/{EXPERIMENT_STATE.format(session)}", storage_filesystem=fs
            )
    except Exception as exc:  # truncated JSON, a broken snapshot
        raise HPOError(
            f"{shown} is damaged ({cause(exc)}): Ray Tune cannot restore its "
            f"trials from it ({finished} trials ended per trials.jsonl and the study, kept "
            "there); restore the file from a copy of the run directory, or start a new sweep."
        ) from exc
    check_searcher_state(location, session)
    facts = {}
    for trial in analysis.trials:
        last = dict(trial.last_result or {})
        fact = TrialFacts(trial.trial_id, trial_index(trial), dict(trial.config), last=last)
        if trial.status == "TERMINATED":
            fact.status = STATUS_COMPLETED if last.get(FINISHED_KEY) else STATUS_STOPPED
        elif trial.status == "ERROR":
            fact.status, fact.error = STATUS_FAILED, error_text(trial)
        if last.get("epoch") is not None and isinstance(last.get(metric), (int, float)):
            fact.values[int(last["epoch"])] = float(last[metric])
        facts[trial.trial_id] = fact
    return facts
