"""The export is atomic: it is written into ``RUN_DIR/best.partial`` and renamed to
``RUN_DIR/best`` only when every file (report included) is there.

The last file written into the staging folder is ``complete.json``: every file of the
export with its size. ``hpo predict`` loads only a directory whose ``complete.json``
lists the files it finds, at the sizes it finds them, so a folder a kill cut short, a
file deleted or truncated since, or an export from before this rule is refused with one
line saying how to export again. A kill during the export leaves the previous ``best/``
(or none) and a ``best.partial`` that the next export replaces; ``hpo resume RUN_DIR``
exports again when every trial has finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hpo.errors import HPOError
from hpo.paths import os_errors
from hpo.rundir import BEST, STAGING, BestFiles

BEST_DIR = BEST
COMPLETE_FILE = BestFiles.COMPLETE
COMPLETE_FORMAT = "hpo.complete/1"


class ExportInterrupted(KeyboardInterrupt):
    """Ctrl-C during the export: best/ is unchanged; ``hpo resume`` exports again."""

    def __init__(self, run_dir: str) -> None:
        import shlex

        super().__init__(
            "the export stopped before it finished (best/ was not replaced); export it with: "
            f"hpo resume {shlex.quote(str(run_dir))}"
        )


def begin_staging(run_dir: Path) -> Path:
    """A fresh, empty staging folder for the export of ``run_dir``."""
    staging = run_dir / STAGING
    with os_errors(staging, "the export's staging folder"):
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    return staging


def _listing(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != COMPLETE_FILE
    }


def publish(staging: Path) -> Path:
    """Seal ``staging`` (write ``complete.json``) and rename it to ``best/``, replacing
    the previous export; returns ``best/``."""
    best = staging.with_name(BEST_DIR)
    old = staging.with_name(f"{BEST_DIR}.old")
    with os_errors(best, "the export"):
        document = {"format": COMPLETE_FORMAT, "files": _listing(staging)}
        (staging / COMPLETE_FILE).write_text(json.dumps(document, indent=1) + "\n")
        shutil.rmtree(old, ignore_errors=True)
        if best.exists():
            best.rename(old)
        staging.rename(best)  # a kill before this line leaves the old best/ in best.old
        shutil.rmtree(old, ignore_errors=True)
    return best


def check_complete(model_dir: str | Path, needed: tuple[str, ...] = ()) -> None:
    """Refuse a model directory the export did not finish (see the module docstring).

    Args:
        model_dir: an exported model directory (RUN_DIR/best).
        needed: the files the caller reads; each must be listed and have its listed
            size (a report rewritten by `hpo report` does not matter). Empty: every file.

    Raises:
        HPOError: no ``complete.json``, or a listed file missing or of another size.
    """
    model_dir = Path(model_dir)
    again = (
        "export it again with `hpo resume RUN_DIR` (the run directory above it) or "
        "hpo.export.pipeline.export_best(RUN_DIR)"
    )
    if not model_dir.is_dir():
        raise HPOError(f"{model_dir} is not a directory; pass an exported model, RUN_DIR/best.")
    try:
        listed = json.loads((model_dir / COMPLETE_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise HPOError(
            f"{model_dir} is not a complete export (no readable {COMPLETE_FILE}: the export "
            f"was interrupted or predates this hpo); {again}."
        ) from None
    for name in needed or tuple(listed):
        if name not in listed:
            raise HPOError(f"{model_dir} is an incomplete export: {name} is missing; {again}.")
        path, size = model_dir / name, listed[name]
        found = path.stat().st_size if path.is_file() else None
        if found != size:
            state = "missing" if found is None else f"{found} bytes, the export wrote {size}"
            raise HPOError(f"{model_dir} is an incomplete export: {name} is {state}; {again}.")
