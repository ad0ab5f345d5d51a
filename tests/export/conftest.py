"""The export tests reuse the data tests' tables (tests/data/data_tables.py)."""

from __future__ import annotations

import sys
from pathlib import Path

DATA_TESTS = str(Path(__file__).resolve().parents[1] / "data")
if DATA_TESTS not in sys.path:
    sys.path.append(DATA_TESTS)
