"""A trial that raises, in a real sweep on a real local Ray: Ray Tune's traceback goes to
RUN_DIR/ray_tune.log, not to the terminal, and the error is recorded with the trial."""

from __future__ import annotations

import pytest

from hpo.sweep import run_sweep
from hpo.sweep.lock import release_run_dir

pytestmark = pytest.mark.slow


def test_a_raising_trials_traceback_goes_to_the_run_log(ray_local, user_model_cfg, capfd):
    cfg = user_model_cfg(
        "user_models.DivergingLinear",
        {"model.width": "choice(8, -1)"},
        "searcher=grid",
        "scheduler=fifo",
        "budget.max_retries=0",
        "budget.max_failure_rate=0.9",
        width=8,
    )
    capfd.readouterr()
    result = run_sweep(cfg, stream=None)
    release_run_dir(result.run_dir)
    out, err = capfd.readouterr()
    assert result.counts["failed"] == 1
    assert "Traceback" not in out + err and "Trial task failed" not in out + err
    log = (result.run_dir / "ray_tune.log").read_text()
    # (the trial's own failure ends it cleanly: hpo logs its traceback, Ray Tune has none)
    assert "failed:\nTraceback" in log and "negative dimension" in log
