"""Helpers shared by the export tests: a real `hpo sweep` in this process, and the rows a
run held out for its test."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd

from hpo.cli import main
from hpo.config import load_run_config
from hpo.data import prepare_data

SMALL = ["cv.folds=3", "trainer.patience=3", "scheduler.grace_period=1"]
# a small sweep of tests/data's messy CSV (missing values, stray text, a string target)
MESSY = ["data=csv", "data.target=churned", "trainer.max_epochs=4", "budget.num_samples=3"]


def sweep(out: Path, *overrides: str) -> tuple[Path, str]:
    """`hpo sweep` in this process (on the session's Ray); the run dir and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["sweep", *SMALL, f"output_dir={out}", *overrides])
    assert code == 0, printed.getvalue()
    (run_dir,) = [p for p in out.glob("*/*") if p.is_dir()]
    return run_dir, printed.getvalue()


def held_out_rows(run_dir: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The test split's cleaned feature rows and target, as the run's config gives them."""
    prepared = prepare_data(load_run_config(run_dir))
    rows = prepared.features.iloc[prepared.test_idx].reset_index(drop=True)
    return rows, prepared.table.target.iloc[prepared.test_idx].reset_index(drop=True)
