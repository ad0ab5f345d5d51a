"""Resume unpickles Ray Tune's state, so it refuses a run directory others can write; a
token file others can read draws a warning. Real files and a real `hpo resume` process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.cluster import resolve_token

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = dict(os.environ, PYTHONPATH=str(SRC))


def resume(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hpo", "resume", str(run_dir), *args],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("loose", ["tune/tuner.pkl", "tune", "."])
def test_resume_refuses_a_run_dir_other_users_can_write(tmp_path, loose):
    run_dir = tmp_path / "run"
    (run_dir / "tune").mkdir(parents=True)
    (run_dir / "tune" / "tuner.pkl").write_bytes(b"not unpickled")
    (run_dir / loose).chmod(0o777 if loose != "tune/tuner.pkl" else 0o666)
    refused = resume(run_dir)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "is writable by other users" in line and "--trust-run-dir" in line
    assert str((run_dir / loose).resolve() if loose != "." else run_dir) in line
    trusted = resume(run_dir, "--trust-run-dir")  # goes on, to the missing config.yaml
    assert trusted.returncode == 2 and "writable by other users" not in trusted.stderr


def test_a_token_file_others_can_read_is_warned_about(tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text("secret\n")
    token.chmod(0o644)
    assert resolve_token(str(token)).value == "secret"
    assert f"chmod 600 {token}" in capsys.readouterr().err
    token.chmod(0o600)
    resolve_token(str(token))
    assert capsys.readouterr().err == ""
