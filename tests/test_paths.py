"""OS errors are one line naming the path and the fix: real `hpo sweep` and `hpo predict`
processes pointed at a file, at a folder they may not write, and at a full device."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = dict(os.environ, PYTHONPATH=str(SRC))
SWEEP = [sys.executable, "-m", "hpo", "sweep", "data=iris", "cv.folds=2"]


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpo: error: "), proc.stderr
    return lines[0]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.parametrize("key", ["output_dir", "run_dir"])
def test_a_file_where_the_run_directory_should_be(tmp_path, key):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder\n")
    line = one_error_line(run([*SWEEP, f"{key}={blocker / 'runs'}"]))
    assert f"config key `{key}`" in line and f"{blocker} is a file, not a directory" in line
    assert blocker.read_text() == "not a folder\n"


def bound_by_mode_bits() -> None:
    """In the child before exec: drop the capabilities that let root ignore mode bits
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from its bounding set; a no-op for others."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_a_run_directory_the_user_may_not_write():
    unprivileged = {"preexec_fn": bound_by_mode_bits}
    readonly = Path(tempfile.mkdtemp(prefix="hpo-readonly-"))
    try:
        readonly.chmod(0o555)
        proc = run([*SWEEP, f"output_dir={readonly / 'runs'}"], cwd=readonly, **unprivileged)
        line = one_error_line(proc)
        assert f"{readonly / 'runs'}" in line and "Permission denied" in line
        assert "make it writable" in line and not any(readonly.iterdir())
    finally:
        readonly.chmod(0o755)
        shutil.rmtree(readonly)


def test_a_full_disk_before_any_ray_work(tmp_path):
    # /dev/full fails every write with ENOSPC, as a full disk does.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").symlink_to("/dev/full")
    line = one_error_line(run([*SWEEP, f"run_dir={run_dir}"]))
    assert f"{run_dir / 'config.yaml'}: No space left on device" in line
    assert "the disk is full" in line
