"""`hpo resume RUN_DIR`: finish a sweep whose driver was killed or interrupted.

The same Sweep as `hpo sweep` (hpo.sweep.runner.build_sweep), run with ``resume=True``:
Ray Tune brings back its trials from ``RUN_DIR/tune`` (finished ones are kept and not
run again; unfinished ones continue from their last checkpoint); the searcher reopens
the run's Optuna study (``optuna_journal.log``, with ``optuna.load_study``); the rungs
are rebuilt by replaying trials.jsonl (hpo.sweep.asha). trials.jsonl goes on from its
last row. Before any of it, trials.jsonl, Tune's saved state and the study are checked
against each other and trials.jsonl's lost rows rebuilt (hpo.sweep.verify); what cannot
be rebuilt is one HPOError. A moved or copied run directory resumes where it is now
(hpo.sweep.relocate).

What it cannot verify, and says so: a trial whose end reached the study and
trials.jsonl just before the kill, but not Tune's last snapshot, is run again by Tune
from its last checkpoint; its first outcome is the one kept (study and trials.jsonl).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow.fs as pafs
from omegaconf import DictConfig, OmegaConf

from hpo.cluster import start_ray, stop_ray
from hpo.config.compose import load_run_config, validate_config
from hpo.errors import ConfigError, HPOError
from hpo.space import build_search_space
from hpo.sweep.asha import SchedulerState, first_results
from hpo.sweep.factories import make_scheduler
from hpo.sweep.lock import claim_run_dir
from hpo.sweep.optuna_bridge import JOURNAL_FILE
from hpo.sweep.recorder import STATUS_RUNNING, drop_partial_row
from hpo.sweep.results import ROWS_FILE, load_rows
from hpo.sweep.runner import (
    SweepResult,
    build_sweep,
    check_before_ray,
    check_resources,
    finish_run,
    fit_sweep,
    prepare_sweep_data,
    upload_progress,
)
from hpo.sweep.storage import (
    CHECKPOINT_DIR,
    RunLocation,
    replace_missing_checkpoint,
    tune_filesystem,
)
from hpo.sweep.tune_log import TUNE_LOG
from hpo.sweep.tune_state import check_scheduler_state, newest_session
from hpo.sweep.verify import read_rows, verify_run

# What may change between the interrupted run and its resume: where it runs, not what.
RESUMABLE_KEYS = ("cluster.",)
# How many checkpoints the snapshot's named one can trail the newest folder on disk: one
# registered after the snapshot, one written but not yet registered (see below).
SNAPSHOT_LAG = 3


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``key=value`` overrides of the ``cluster`` keys onto a saved run config."""
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or not key.startswith(RESUMABLE_KEYS):
            raise ConfigError(
                f"override {override!r}: `hpo resume` takes only cluster.* overrides "
                "(e.g. cluster.address=auto); the sweep itself is fixed by the run "
                "directory's config.yaml."
            )
    if not overrides:
        return cfg
    merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return validate_config(OmegaConf.to_container(merged))


def trial_statuses(rows_file: Path) -> dict[str, str]:
    """trial_id -> its recorded status (``running`` when its end was never written)."""
    drop_partial_row(rows_file)
    frame = load_rows(rows_file)
    return {} if frame.empty else frame.groupby("trial_id")["status"].last().to_dict()


def repair_snapshot_checkpoints(location: RunLocation, unfinished: Sequence[str]) -> list[str]:
    """Recreate checkpoints that Tune's last snapshot may name but Tune already deleted.

    With ``CheckpointConfig(num_to_keep=1)`` Ray Tune deletes a trial's previous
    checkpoint the moment it registers a new one, and the experiment snapshot that names
    the checkpoint to restore from reaches storage a moment later (asynchronously). A
    driver killed in between leaves a snapshot naming a deleted checkpoint, and the
    restore would fail that trial. For each unfinished trial, each missing checkpoint
    among the ``SNAPSHOT_LAG`` below its newest folder is recreated from the next newer
    one: the trial resumes where it really was (its epoch count is in the checkpoint, so
    trials.jsonl and the scheduler, which count epochs, stay right). Only folders are
    read: the snapshot's format is Tune's own business.
    """
    fs, base = tune_filesystem(location)
    repaired = []
    for trial_id in unfinished:
        trial_dir = f"{base.rstrip('/')}/trial_{trial_id}"
        indices = sorted(
            int(match.group(1))
            for info in fs.get_file_info(pafs.FileSelector(trial_dir, allow_not_found=True))
            if info.type == pafs.FileType.Directory
            and (match := CHECKPOINT_DIR.match(info.base_name))
        )
        if not indices:
            continue
        for index in range(max(0, indices[-1] - SNAPSHOT_LAG), indices[-1]):
            wanted = f"{trial_dir}/checkpoint_{index:06d}"
            if replace_missing_checkpoint(fs, wanted):
                repaired.append(wanted)
    return repaired


def has_started(location: RunLocation) -> bool:
    """Anything of a sweep that ran: Tune's snapshot, a recorded row, the study."""
    journal = location.local / JOURNAL_FILE
    return (
        newest_session(location) is not None
        or bool(read_rows(location.local / ROWS_FILE)[0])
        or (journal.is_file() and journal.stat().st_size > 0)
    )


def replay_scheduler(sweep, rows_file: Path) -> int | None:
    """Rebuild the scheduler's records from trials.jsonl, hpo's own record of every
    result as it arrived (at least as new as Tune's last snapshot, which can trail the
    checkpoint a trial resumes from); returns how many results were replayed (None: the
    scheduler keeps no records). The records saved with the snapshot are then not
    loaded: the callback that carries them is left out (Tune restores callback state by
    position, and the recorder stays first), so a deleted or damaged scheduler state
    file loses nothing."""
    if not hasattr(sweep.scheduler, "replay"):
        return None
    rows, _ = read_rows(rows_file)  # (verified and rebuilt by then: hpo.sweep.verify)
    sweep.scheduler.replay(rows)
    sweep.callbacks = [c for c in sweep.callbacks if not isinstance(c, SchedulerState)]
    return sum(1 for _ in first_results(rows))


def keeps_study(cfg: DictConfig) -> bool:
    """The run's searcher keeps an Optuna study in the run directory (not under PBT, not
    with Ray's stock OptunaSearch)."""
    return cfg.scheduler.name != "pbt" and cfg.searcher.get("bridge", "fidelity") != "stock"


def say(stream, *lines: str) -> None:
    if stream is not None:
        for line in lines:
            print(line, file=stream, flush=True)


def resume_sweep(
    run_dir: str | Path, overrides: Sequence[str] = (), stream=sys.stdout
) -> SweepResult:
    """Finish the sweep in ``run_dir`` (a path or URI) and write its results.

    Args:
        run_dir: the run directory an interrupted ``hpo sweep`` printed.
        overrides: ``cluster.*`` overrides (e.g. to resume on another cluster).
        stream: where progress lines go (None: silent).

    Raises:
        SweepInterrupted: Ctrl-C again; resume once more.
    """
    started_at = time.monotonic()
    location = RunLocation.open(run_dir)
    claim_run_dir(
        location.local, "hpo resume"
    )  # one sweep per run dir; export_and_summarize releases it
    cfg = apply_overrides(load_run_config(location.local), overrides)
    if not has_started(location):
        raise HPOError(
            f"{location.display} has no search state (tune/experiment_state-*.json, "
            f"{ROWS_FILE}, {JOURNAL_FILE}): the sweep stopped before it started; run "
            "`hpo sweep` again."
        )
    space, _ = build_search_space(cfg.search_space)
    # the same split and folds: they depend on the seed only
    prepared, task, names = prepare_sweep_data(cfg, space)
    num_samples = check_before_ray(cfg, space, task, names)
    # trials.jsonl, Tune's state and the study, each checked against the others
    verification = verify_run(location, cfg.metric, names, keeps_study(cfg))
    replays = hasattr(make_scheduler(cfg, space), "replay")
    scheduler_file = check_scheduler_state(location, replays)
    status = trial_statuses(location.local / ROWS_FILE)
    ended = sum(state != STATUS_RUNNING for state in status.values())
    say(stream, *verification.lines())
    say(stream, f"hpo: resuming {location.display}: {ended} of {num_samples} trials finished")
    if ended >= num_samples:  # nothing left to run: just (re)write the results
        return finish_run(cfg, location, space, started_at, None, prepared, None)
    repair_snapshot_checkpoints(location, [t for t, st in status.items() if st == STATUS_RUNNING])
    owns_ray = start_ray(cfg.cluster)
    try:
        concurrent = check_resources(cfg)
        sweep = build_sweep(cfg, prepared, space, location, num_samples, concurrent, stream, names)
        replayed = replay_scheduler(sweep, location.local / ROWS_FILE)
        if replayed is not None:
            say(
                stream,
                f"hpo: rebuilt scheduler={cfg.scheduler.name}'s records from {ROWS_FILE} "
                f"({replayed} results replayed; its state file in tune/: "
                f"{scheduler_file or 'read, not needed'})",
            )
        elif not hasattr(sweep.scheduler, "state_dict") and cfg.scheduler.name != "fifo":
            say(  # (FIFO has nothing to lose)
                stream,
                f"hpo: scheduler={cfg.scheduler.name} keeps no state hpo can save: it goes "
                "on without its history of the trials before the resume",
            )
        try:
            fit_sweep(sweep, cfg, location, num_samples, resume=True)
        except (HPOError, KeyboardInterrupt):
            raise
        except Exception as exc:  # Tune's restore failed: its cause, not an interrupt
            cause = (str(exc).strip().splitlines() or [""])[-1]
            raise HPOError(
                f"cannot resume {location.display}: Ray Tune's restore failed "
                f"({type(exc).__name__}: {cause}); its log is {location.local / TUNE_LOG}."
            ) from exc
    finally:
        if owns_ray:
            stop_ray()
        upload_progress(location)
    study = getattr(sweep.searcher, "study", None)
    return finish_run(cfg, location, space, started_at, study, prepared, sweep.scheduler)
