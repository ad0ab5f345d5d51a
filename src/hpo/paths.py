"""Paths hpo writes to: checked before anything is written, and OS errors turned into one
HPOError line that names the path and the fix.

Layering: beside hpo.errors, below everything else (no Ray, no torch, no pandas).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from hpo.errors import HPOError

FIXES = {
    errno.EACCES: "make it writable (chmod/chown) or choose another path",
    errno.EPERM: "make it writable (chmod/chown) or choose another path",
    errno.EROFS: "the filesystem is read-only: choose a path on a writable one",
    errno.ENOSPC: "the disk is full: free space or choose a path on another disk",
    errno.EDQUOT: "the disk quota is exhausted: free space or choose another path",
    errno.ENOTDIR: "a file stands where a directory should be: move it or choose another path",
    errno.EISDIR: "a directory stands where a file should be: move it or choose another path",
    errno.EEXIST: "it already exists: remove it or choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_line(exc: OSError, path: str | Path | None = None, what: str = "") -> str:
    """One line for an OS error: what failed, on which path, why, and the fix."""
    target = path if path is not None else (exc.filename or "a file hpo was writing")
    fix = FIXES.get(exc.errno, "check the path and its permissions")
    reason = exc.strerror or type(exc).__name__
    return f"{what + ' ' if what else ''}{target}: {reason}; {fix}."


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError that caused ``exc`` (Ray Tune wraps a callback's in a TuneError)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def raise_for_os_error(exc: BaseException, what: str, then: str = "") -> None:
    """Raise one HPOError line if an OSError caused ``exc``; return otherwise."""
    cause = os_error_in(exc)
    if cause is not None:
        raise HPOError(f"{what}: {os_error_line(cause)}{' ' + then if then else ''}") from exc


@contextlib.contextmanager
def os_errors(path: str | Path | None = None, what: str = "") -> Iterator[None]:
    """Re-raise an OSError inside the block as one HPOError line (see ``os_error_line``)."""
    try:
        yield
    except OSError as exc:
        raise HPOError(os_error_line(exc, path, what)) from exc


def writable_dir(path: str | Path, key: str) -> Path:
    """Create ``path`` as a directory (with its parents) and check that it is writable.

    Args:
        path: the directory.
        key: the config key or option that named it, for the message.

    Raises:
        HPOError: a file is in the way, a parent is not writable, the disk is read-only.
    """
    path = Path(path).expanduser()
    check_creatable_dir(path, key)
    with os_errors(path, key):
        path.mkdir(parents=True, exist_ok=True)
    check_creatable_dir(path, key)  # the directory as made: writable by this user?
    return path


def check_creatable_dir(path: str | Path, key: str) -> None:
    """Refuse a directory that could not be created or written (a file in the way, a
    parent or the directory itself that this user may not write), creating nothing.

    ``hpo sweep`` calls it before it imports the sweep machinery (about 10 s), so that a
    wrong ``output_dir`` or ``run_dir`` is a one-line error at once; ``writable_dir``
    checks again when the run directory is made.
    """
    path = Path(path).expanduser()
    with os_errors(path, key):
        for parent in (path, *path.parents):
            if not parent.exists():
                continue
            if not parent.is_dir():
                raise HPOError(
                    f"{key} {path}: {parent} is a file, not a directory; move it or "
                    "choose another path."
                )
            if os.access(parent, os.W_OK | os.X_OK):
                return
            if parent == path:
                raise HPOError(
                    f"{key} {path}: the directory is not writable; make it writable "
                    "(chmod/chown) or choose another path."
                )
            # what mkdir would raise
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.is_relative_to(folder)
    except ValueError:
        return False


def new_output_file(
    path: str | Path,
    option: str,
    overwrite: bool = False,
    never: Iterable[str | Path] = (),
    never_inside: Iterable[str | Path] = (),
) -> Path:
    """Check that writing ``path`` loses nothing, before anything is computed.

    Args:
        path: the file to write.
        option: the option that named it (``--output``), for the message.
        overwrite: an existing file may be replaced (never one of ``never``).
        never: files that are never written (e.g. the input being read).
        never_inside: directories nothing is written into (e.g. the model directory).

    Raises:
        HPOError: the path exists (without ``overwrite``), is a directory, is one of
            ``never`` or lies inside one of ``never_inside``.
    """
    path = Path(path).expanduser()
    real = path.resolve()
    for other in never:
        if Path(other).expanduser().resolve() == real:
            raise HPOError(f"{option} {path} is the input file; write the output to another path.")
    for folder in never_inside:
        if _inside(real, Path(folder).expanduser().resolve()):
            raise HPOError(
                f"{option} {path} lies inside the model directory {folder}; write the "
                "output elsewhere (the model's files are never replaced)."
            )
    if path.is_dir():
        raise HPOError(f"{option} {path} is a directory; give a file name.")
    if path.exists() and not overwrite:
        raise HPOError(
            f"{option} {path} exists; pass --overwrite to replace it, or choose a new path."
        )
    if not path.exists():  # replacing a file needs its own permission, not the folder's
        writable_dir(path.parent, option)
    return path
