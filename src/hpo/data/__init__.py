"""Data: sources, splits, preprocessing and the fold arrays that trials train on."""

from hpo.data.prepare import FoldArrays, PreparedData, prepare_data

__all__ = ["FoldArrays", "PreparedData", "prepare_data"]
