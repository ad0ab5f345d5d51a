"""The export tests reuse the data tests' tables (tests/data/data_tables.py), and share
one real sweep of the messy CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DATA_TESTS = str(Path(__file__).resolve().parents[1] / "data")
if DATA_TESTS not in sys.path:
    sys.path.append(DATA_TESTS)


@pytest.fixture(scope="session")
def messy_run(ray_local, tmp_path_factory):
    """A real small sweep of the messy CSV: (the CSV, the run directory)."""
    from data_tables import write_messy_csv
    from export_runs import MESSY, sweep

    out = tmp_path_factory.mktemp("messy")
    csv = write_messy_csv(out / "customers.csv")
    run_dir, _ = sweep(out / "runs", *MESSY, f"data.path={csv}")
    return csv, run_dir
