"""One sweep per run directory: an exclusive lock on ``RUN_DIR/run.lock``.

``hpo sweep`` and ``hpo resume`` claim the run directory before they write to it and hold
the claim until the export is written (or the process ends). The lock is an ``flock`` on
an open file, so the kernel drops it the moment its process dies, however it dies
(SIGKILL included): a lock file left by a dead process is stale by construction and is
simply taken over. The file also names its holder (pid, host, command, start time) so
that a second sweep fails at once with one line saying who holds the directory.

The claim is per process and per directory: claiming a directory this process already
holds returns the same lock, so the sweep and its export share one claim.

Limits: a run directory at a URI (``s3://...``) is not locked (object stores have no
locks); only its local staging folder is. On a shared filesystem the lock holds across
machines where the filesystem supports ``flock`` (NFSv4 and Lustre with ``flock`` do).
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import HPOError
from hpo.rundir import LOCK as LOCK_FILE

_HELD: dict[Path, RunLock] = {}


@dataclass
class RunLock:
    """A held claim on a run directory (``release`` drops it)."""

    run_dir: Path
    fd: int

    def release(self) -> None:
        """Drop the claim (the lock file stays, naming nobody alive)."""
        if _HELD.get(self.run_dir) is self:
            del _HELD[self.run_dir]
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = -1


def _holder_text(path: Path) -> str:
    """Who holds the lock, as written in the lock file."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another process"
    return (
        f"`{holder.get('command', 'hpo')}` (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('started', '?')})"
    )


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except IsADirectoryError:
        raise HPOError(
            f"{path} is a directory; hpo keeps its lock file there: remove it or choose "
            "another run_dir."
        ) from None
    except OSError as exc:
        raise HPOError(
            f"cannot create the lock file {path} ({exc.strerror}); make {path.parent} "
            "writable or choose another run_dir."
        ) from None


def claim_run_dir(run_dir: str | Path, command: str) -> RunLock:
    """Claim ``run_dir`` for this process, or fail at once if another process holds it.

    Args:
        run_dir: an existing local run directory.
        command: what holds it, for the other process's message (``"hpo sweep"``).

    Returns:
        The held lock; it lasts until ``release`` or the end of this process.

    Raises:
        HPOError: another live process holds the directory (named in the message).
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD:
        return _HELD[run_dir]
    path = run_dir / LOCK_FILE
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise HPOError(
                f"run directory {run_dir} is in use by {_holder_text(path)}; wait for it "
                "to finish (or stop it), or choose another run_dir."
            ) from None
        raise HPOError(
            f"cannot lock {path} ({exc.strerror}); put run_dir on a filesystem with file "
            "locks (a local disk, NFSv4)."
        ) from None
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    lock = RunLock(run_dir, fd)
    _HELD[run_dir] = lock
    return lock


def release_run_dir(run_dir: str | Path) -> None:
    """Release this process's claim on ``run_dir``, if it holds one."""
    lock = _HELD.get(Path(run_dir).resolve())
    if lock is not None:
        lock.release()
