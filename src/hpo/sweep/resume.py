"""`hpo resume RUN_DIR`: finish a sweep whose driver was killed or interrupted.

The same Sweep as `hpo sweep` (hpo.sweep.runner.build_sweep), run with ``resume=True``:
Ray Tune brings back its trials from ``RUN_DIR/tune`` (finished ones are kept and not
run again; unfinished ones continue from their last checkpoint); the searcher reopens
the run's Optuna study (``optuna_journal.log``, with ``optuna.load_study``); the rungs
come back as the scheduler callback's state (hpo.sweep.asha). trials.jsonl goes on from
its last row.

What it cannot verify, and says so: a trial whose end reached the study and
trials.jsonl just before the kill, but not Tune's last snapshot, is run again by Tune
from its last checkpoint; its first outcome is the one kept (study and trials.jsonl).
"""

from __future__ import annotations

import json
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
from hpo.sweep.asha import SchedulerState
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


def has_search_state(location: RunLocation) -> bool:
    """Tune's experiment snapshot and hpo's study journal are both there."""
    fs, base = tune_filesystem(location)
    snapshots = [
        info
        for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        if info.base_name.startswith("experiment_state-")
    ]
    return bool(snapshots) and (location.local / JOURNAL_FILE).is_file()


def replay_scheduler(sweep, rows_file: Path) -> None:
    """Rebuild the scheduler's records from trials.jsonl, hpo's own record of every
    result as it arrived (at least as new as Tune's last snapshot, which can trail the
    checkpoint a trial resumes from). The records saved with the snapshot are then not
    loaded: the callback that carries them is left out (Tune restores callback state by
    position, and the recorder stays first)."""
    if not hasattr(sweep.scheduler, "replay"):
        return
    lines = rows_file.read_text().splitlines() if rows_file.exists() else []
    sweep.scheduler.replay([json.loads(line) for line in lines if line.strip()])
    sweep.callbacks = [c for c in sweep.callbacks if not isinstance(c, SchedulerState)]


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
    claim_run_dir(location.local, "hpo resume")  # one sweep per run dir; export_and_summarize releases it
    cfg = apply_overrides(load_run_config(location.local), overrides)
    if not has_search_state(location):
        raise HPOError(
            f"{location.display} has no search state (tune/experiment_state-*.json and "
            f"{JOURNAL_FILE}): the sweep stopped before it started; run `hpo sweep` again."
        )
    space, _ = build_search_space(cfg.search_space)
    # the same split and folds: they depend on the seed only
    prepared, task, names = prepare_sweep_data(cfg, space)
    num_samples = check_before_ray(cfg, space, task, names)
    status = trial_statuses(location.local / ROWS_FILE)
    ended = sum(state != STATUS_RUNNING for state in status.values())
    if stream is not None:
        print(
            f"hpo: resuming {location.display}: {ended} of {num_samples} trials finished",
            file=stream,
            flush=True,
        )
    if ended >= num_samples:  # nothing left to run: just (re)write the results
        return finish_run(cfg, location, space, started_at, None, prepared, None)
    repair_snapshot_checkpoints(location, [t for t, st in status.items() if st == STATUS_RUNNING])
    owns_ray = start_ray(cfg.cluster)
    try:
        concurrent = check_resources(cfg)
        sweep = build_sweep(cfg, prepared, space, location, num_samples, concurrent, stream, names)
        replay_scheduler(sweep, location.local / ROWS_FILE)
        if stream is not None and not hasattr(sweep.scheduler, "state_dict"):
            if cfg.scheduler.name != "fifo":  # (FIFO has nothing to lose)
                print(
                    f"hpo: scheduler={cfg.scheduler.name} keeps no state hpo can save: it "
                    "goes on without its history of the trials before the resume",
                    file=stream,
                    flush=True,
                )
        try:
            fit_sweep(sweep, cfg, location, num_samples, resume=True)
        except (ValueError, FileNotFoundError) as exc:
            raise HPOError(f"cannot resume {location.display}: {exc}") from exc
    finally:
        if owns_ray:
            stop_ray()
        upload_progress(location)
    study = getattr(sweep.searcher, "study", None)
    return finish_run(cfg, location, space, started_at, study, prepared, sweep.scheduler)
