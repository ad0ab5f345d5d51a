"""Fixtures for the data tests: small tables written to real files, and the config that
points hpo at them."""

from __future__ import annotations

import pandas as pd
import pytest
from data_tables import write_table


@pytest.fixture
def table_cfg(tmp_path, small_cfg):
    """``make(frame, *overrides, fmt="csv", target="label")``: write the frame to a file
    under tmp_path and compose the (shrunk) config that reads it."""
    counter = iter(range(10_000))

    def make(frame: pd.DataFrame, *overrides: str, fmt: str = "csv", target: str = "label"):
        path = write_table(frame, tmp_path / f"table{next(counter)}.{fmt}", fmt)
        return small_cfg(f"data={fmt}", f"data.path={path}", f"data.target={target}", *overrides)

    return make


@pytest.fixture
def file_args(tmp_path):
    """``make(frame_or_bytes, *overrides)``: CLI arguments (data=csv ...) for a file, with
    output_dir under tmp_path."""
    counter = iter(range(10_000))

    def make(content, *overrides: str, fmt: str = "csv", target: str = "label"):
        path = tmp_path / f"input{next(counter)}.{fmt}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            write_table(content, path, fmt)
        return [
            f"data={fmt}",
            f"data.path={path}",
            f"data.target={target}",
            f"output_dir={tmp_path / 'runs'}",
            *overrides,
        ]

    return make
