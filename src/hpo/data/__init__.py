"""Data: sources, cleaning, quality checks, splits, preprocessing and the fold arrays that
trials train on."""

from hpo.data.prepare import FoldArrays, PreparedData, inspect_data, prepare_data

__all__ = ["FoldArrays", "PreparedData", "inspect_data", "prepare_data"]
