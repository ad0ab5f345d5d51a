"""hpo.sweep.storage.replace_missing_checkpoint on real folders: a checkpoint that Tune's
snapshot names is recreated from the trial's next newer one where Tune deleted it, or
where its deletion was cut short by a killed driver; a whole one is left alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from hpo.sweep.storage import replace_missing_checkpoint


def checkpoint(trial: Path, index: int, files: dict[str, str]) -> Path:
    folder = trial / f"checkpoint_{index:06d}"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


WHOLE = {"trial_state.pt": "state", "folds/0.pt": "fold 0", ".metadata.json": "{}"}


def test_a_deleted_checkpoint_is_recreated_from_the_next_newer(tmp_path):
    checkpoint(tmp_path, 1, WHOLE)
    wanted = tmp_path / "checkpoint_000000"
    assert replace_missing_checkpoint(pafs.LocalFileSystem(), str(wanted))
    assert (wanted / "trial_state.pt").read_text() == "state"
    assert (wanted / "folds" / "0.pt").read_text() == "fold 0"


def test_a_checkpoint_whose_deletion_was_cut_short_is_recreated(tmp_path):
    checkpoint(tmp_path, 1, {**WHOLE, "trial_state.pt": "newer"})
    wanted = checkpoint(tmp_path, 0, {"folds/0.pt": "old fold 0"})  # trial_state.pt gone
    assert replace_missing_checkpoint(pafs.LocalFileSystem(), str(wanted))
    assert (wanted / "trial_state.pt").read_text() == "newer"
    assert (wanted / "folds" / "0.pt").read_text() == "fold 0"  # all of one checkpoint


def test_a_whole_checkpoint_and_one_with_nothing_newer_are_left_alone(tmp_path):
    wanted = checkpoint(tmp_path, 0, {**WHOLE, "trial_state.pt": "old"})
    checkpoint(tmp_path, 1, {"trial_state.pt": "newer, still being written"})
    assert not replace_missing_checkpoint(pafs.LocalFileSystem(), str(wanted))
    assert (wanted / "trial_state.pt").read_text() == "old"
    newest = checkpoint(tmp_path, 2, {"folds/0.pt": "partial"})
    assert not replace_missing_checkpoint(pafs.LocalFileSystem(), str(newest))
    assert not (newest / "trial_state.pt").exists()
