"""Trial functions for tests that run Ray Tune itself (the Ray workers import them from
here: tests/ is on their PYTHONPATH, see conftest.py)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ray import tune

EPOCH_S = 0.03


def epochs_trial(config):
    """``config["epochs"]`` epochs of EPOCH_S seconds each, a line per epoch trained in
    ``config["log"]`` (``x epoch time.time()-when-it-ended``), a checkpoint at
    ``config["checkpoint_at"]``, an error at ``config["fail_at"]``; value: higher for a
    higher ``config["x"]``."""
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(EPOCH_S)
        with open(config["log"], "a") as log:
            log.write(f"{config['x']} {epoch} {time.time()}\n")
        if epoch == config.get("fail_at"):
            raise RuntimeError("this epoch fails")
        metrics = {"epoch": epoch, "value": config["x"] * epoch}
        if epoch in config.get("checkpoint_at", ()):
            with tempfile.TemporaryDirectory() as directory:
                Path(directory, "state").write_text(str(epoch))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        else:
            tune.report(metrics)
