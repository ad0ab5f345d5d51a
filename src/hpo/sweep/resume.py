"""`hpo resume RUN_DIR`: finish a sweep whose driver was killed or interrupted.

``Tuner.restore`` brings back what Tune snapshotted in ``RUN_DIR/tune``: the trials
(finished ones are kept and not run again; unfinished ones continue from their last
checkpoint), the searcher with its whole history (for the fidelity bridge that includes
the best value seen of every running trial), and the callbacks' state, which carries
ASHA's rungs (hpo.sweep.asha). trials.jsonl goes on from its last row.
"""

from __future__ import annotations

import fnmatch
import sys
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs
from omegaconf import DictConfig, OmegaConf
from ray import tune

from hpo.cluster import start_ray, stop_ray
from hpo.config.compose import load_run_config, validate_config
from hpo.errors import ConfigError, HPOError
from hpo.space import build_search_space
from hpo.sweep.recorder import STATUS_RUNNING, drop_partial_row
from hpo.sweep.results import ROWS_FILE, load_rows
from hpo.sweep.runner import (
    SweepResult,
    check_before_ray,
    check_resources,
    finish_run,
    fit_tuner,
    make_trainable,
    prepare_sweep_data,
    sweep_callbacks,
)
from hpo.sweep.storage import RunLocation, replace_missing_checkpoint, tune_filesystem

# What may change between the interrupted run and its resume: where it runs, not what.
RESUMABLE_KEYS = ("cluster.",)
FINISHED_IN_TUNE = ("TERMINATED", "ERROR")  # Tune skips these on restore (as configured)


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


def repair_snapshot_checkpoints(location: RunLocation) -> list[str]:
    """Recreate checkpoints that Tune's last snapshot names but Tune had already deleted.

    With ``CheckpointConfig(num_to_keep=1)`` Ray Tune deletes a trial's previous
    checkpoint the moment it registers a new one, and the experiment snapshot that names
    the checkpoint to restore from reaches storage a moment later (asynchronously). A
    driver killed in between leaves a snapshot naming a deleted checkpoint, and
    ``Tuner.restore`` would fail that trial. Each such checkpoint is recreated from the
    trial's next newer one: the trial resumes where it really was (its epoch count is
    in the checkpoint, so trials.jsonl and ASHA, which counts epochs, stay right).

    Reads the snapshot with Ray's own loaders (internal in Ray 2.60); if they change,
    nothing is repaired and Tune reports the trial as before.
    """
    from ray.tune.trainable.metadata import _TrainingRunMetadata
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    fs, base = tune_filesystem(location)
    snapshots = sorted(
        info.path
        for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        if fnmatch.fnmatch(info.base_name, "experiment_state-*.json")
    )
    if not snapshots:
        return []
    repaired = []
    try:
        with fs.open_input_stream(snapshots[-1]) as handle:
            snapshot = _loads_with_cloudpickle(handle.readall())
        for trial_state, run_metadata in snapshot["trial_data"]:
            if _loads_with_cloudpickle(trial_state).get("status") in FINISHED_IN_TUNE:
                continue  # not restored, so its checkpoint is not needed
            manager = _TrainingRunMetadata.from_json_state(run_metadata).checkpoint_manager
            latest = manager.latest_checkpoint_result
            if latest is None:
                continue
            # the path as it was when written; the run directory may have moved since
            trial_dir, name = PurePosixPath(latest.checkpoint.path).parts[-2:]
            wanted = f"{base.rstrip('/')}/{trial_dir}/{name}"
            if replace_missing_checkpoint(fs, wanted):
                repaired.append(wanted)
    except (KeyError, AttributeError, TypeError, ValueError, ImportError):
        return repaired
    return repaired


def restored_parts(tuner: tune.Tuner):
    """The TuneConfig and RunConfig that ``Tuner.restore`` unpickled from tuner.pkl.

    Ray 2.60 has no public accessor; the callbacks must be replaced (the pickled ones
    know neither this process's output stream nor a moved run directory), and the
    restored scheduler and searcher are read after the fit.
    """
    internal = getattr(tuner, "_local_tuner", None)
    if internal is None or not hasattr(internal, "_tune_config"):
        raise HPOError(
            "this Ray version's Tuner hides its restored config, which `hpo resume` needs; "
            "install ray>=2.50,<3 as pyproject.toml asks."
        )
    return internal._tune_config, internal.get_run_config()


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
    cfg = apply_overrides(load_run_config(location.local), overrides)
    if not location.has_tuner_state():
        raise HPOError(
            f"{location.display} has no Ray Tune state (tune/tuner.pkl): the sweep stopped "
            "before it started; run `hpo sweep` again."
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
    repair_snapshot_checkpoints(location)
    owns_ray = start_ray(cfg.cluster)
    try:
        check_resources(cfg)
        try:
            tuner = tune.Tuner.restore(
                location.tune_path,
                trainable=make_trainable(cfg, prepared),
                resume_unfinished=True,
                resume_errored=False,  # a failed trial stays failed (it is recorded so)
                restart_errored=False,
            )
        except (ValueError, FileNotFoundError) as exc:
            raise HPOError(f"cannot resume {location.display}: {exc}") from exc
        tune_config, run_config = restored_parts(tuner)
        scheduler = tune_config.scheduler
        run_config.callbacks = sweep_callbacks(cfg, location, num_samples, scheduler, stream, names)
        fit_tuner(tuner, cfg, location, num_samples)
    finally:
        if owns_ray:
            stop_ray()
        location.upload(ROWS_FILE)
    searcher = tune_config.search_alg
    study = getattr(searcher, "study", None) or getattr(searcher, "_ot_study", None)
    return finish_run(cfg, location, space, started_at, study, prepared, scheduler)
