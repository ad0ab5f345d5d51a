"""`hpo resume` unpickles Ray Tune's saved state (``tune/tuner.pkl``, the experiment and
searcher snapshots), and unpickling runs code: whoever can write a run directory can run
code as whoever resumes it. So a run directory must be as trusted as code, and resume
refuses one that another user owns or can write, unless told to trust it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hpo.errors import HPOError
from hpo.sweep.storage import TUNE_DIR, is_uri


def _untrusted(path: Path) -> str | None:
    """Why ``path`` is not this user's alone to write, or None."""
    info = path.lstat()
    if info.st_uid != os.geteuid():
        return f"{path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not stat.S_ISLNK(info.st_mode):
        return f"{path} is writable by other users (mode {stat.filemode(info.st_mode)})"
    return None


def check_trusted_run_dir(run_dir: str | Path, trusted: bool = False) -> None:
    """Refuse to resume a local run directory that other users own or can write: the run
    directory, ``tune/`` and the files in it that Ray Tune unpickles.

    Args:
        run_dir: the run directory to resume (a URI is not checked: trust its writers).
        trusted: the user said to trust it (``--trust-run-dir``).

    Raises:
        HPOError: naming the first such path and the fix.
    """
    if trusted or is_uri(run_dir):
        return
    root = Path(run_dir).expanduser()
    tune = root / TUNE_DIR
    candidates = [root, tune, *(sorted(tune.iterdir()) if tune.is_dir() else [])]
    for path in candidates:
        if not path.exists():
            continue
        reason = _untrusted(path)
        if reason:
            raise HPOError(
                f"{reason}; `hpo resume` unpickles Ray Tune's state from the run directory, "
                "which runs code as you: resume only run directories as trusted as code "
                "(chmod go-w, or copy it into your own), or pass --trust-run-dir."
            )
