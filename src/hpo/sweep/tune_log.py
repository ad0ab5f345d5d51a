"""Ray Tune's own log lines (a failed trial's traceback, repeated per retry: hundreds of
lines) and the traceback of a trial whose own code failed (hpo.sweep.recorder) go to
``RUN_DIR/ray_tune.log`` while the sweep runs, not to the terminal. The trial's error
itself is recorded in trials.jsonl / trials.parquet (``error``) and the progress line
counts it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from hpo.rundir import TUNE_LOG

LOGGERS = ("ray.tune", "ray.air", "ray.train", "hpo.trials")  # (hpo.sweep.recorder)


@contextlib.contextmanager
def tune_log_to(run_dir: Path) -> Iterator[Path]:
    """Send Ray Tune's loggers to ``run_dir/ray_tune.log`` for the block, then restore."""
    path = Path(run_dir) / TUNE_LOG
    handler = logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False  # Ray's handler on the `ray` logger writes to the terminal
    try:
        yield path
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()
