"""Pruning a finished sweep's checkpoints, on real folders at a path and at a URI."""

from __future__ import annotations

import pytest

from hpo.sweep.prune import prune_checkpoints
from hpo.sweep.storage import RunLocation


def _tune_folder(run_dir):
    tune = run_dir / "tune"
    for trial, epochs in (("trial_a", (3,)), ("trial_b", (5, 6))):
        for epoch in epochs:
            folder = tune / trial / f"checkpoint_{epoch:06d}"
            folder.mkdir(parents=True)
            (folder / "state.pt").write_bytes(b"x" * 1000)
        (tune / trial / "result.json").write_text("{}")
    (tune / "experiment_state-2026.json").write_text("{}")
    return tune


@pytest.mark.parametrize("as_uri", [False, True])
def test_every_trial_checkpoint_goes_and_the_experiment_state_stays(tmp_path, as_uri):
    tune = _tune_folder(tmp_path)
    location = RunLocation(tmp_path, f"file://{tmp_path}" if as_uri else None)
    assert prune_checkpoints(location) == {"checkpoints": 3, "bytes": 3000}
    assert not list(tune.glob("*/checkpoint_*"))
    assert (tune / "experiment_state-2026.json").is_file()
    assert (tune / "trial_b" / "result.json").is_file()


def test_a_run_without_a_tune_folder_prunes_nothing(tmp_path):
    assert prune_checkpoints(RunLocation(tmp_path)) == {"checkpoints": 0, "bytes": 0}
