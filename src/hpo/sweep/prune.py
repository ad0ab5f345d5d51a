"""Prune the trial checkpoints a finished sweep no longer needs.

Ray Tune keeps each trial's latest checkpoint (``CheckpointConfig(num_to_keep=1)``) so
that an interrupted sweep resumes its unfinished trials from them (hpo.sweep.resume).
Once the sweep has finished, every trial has ended (completed, stopped by the scheduler,
or failed): `hpo resume` restores none of them, and the export replays the best trial from
its hyperparameters and seed, not from a checkpoint. Their checkpoints are then dead
weight (a default digits sweep kept about 170 MB of them) and are deleted, through the
run's filesystem (a path or a URI). The rest of ``tune/`` (the experiment snapshot, the
searcher's and callbacks' state) stays, so the run can still be inspected and resumed.

Pruning runs only after the sweep has finished: while trials run, the snapshot Tune
restores from may lag a trial's end, and its checkpoint would still be needed.
"""

from __future__ import annotations

import pyarrow.fs as pafs

from hpo.sweep.storage import CHECKPOINT_DIR, RunLocation, tune_filesystem


def _size(fs: pafs.FileSystem, path: str) -> int:
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sum(info.size or 0 for info in found if info.type == pafs.FileType.File)


def trial_checkpoints(fs: pafs.FileSystem, base: str) -> list[str]:
    """Every ``tune/<trial>/checkpoint_NNNNNN`` folder of the run."""
    trials = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    found = []
    for trial in trials:
        if trial.type != pafs.FileType.Directory:
            continue
        for child in fs.get_file_info(pafs.FileSelector(trial.path)):
            if child.type == pafs.FileType.Directory and CHECKPOINT_DIR.match(child.base_name):
                found.append(child.path)
    return sorted(found)


def prune_checkpoints(location: RunLocation) -> dict[str, int]:
    """Delete the checkpoints of a finished sweep's trials; how many and how many bytes.

    Call it only once every trial has ended (``hpo.sweep.runner.finish_run``).
    """
    fs, base = tune_filesystem(location)
    removed, freed = 0, 0
    for path in trial_checkpoints(fs, base):
        freed += _size(fs, path)
        fs.delete_dir(path)
        removed += 1
    return {"checkpoints": removed, "bytes": freed}
