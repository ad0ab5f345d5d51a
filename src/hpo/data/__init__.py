"""Data: sources, cleaning, quality checks, splits, preprocessing and the fold arrays that
trials train on.

The public names load on first use (PEP 562): ``hpo.data.clean`` and ``hpo.data.files``
are what an exported model runs at predict time, and importing them must not pull in
scikit-learn through ``hpo.data.prepare``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.data.prepare import FoldArrays, PreparedData, inspect_data, prepare_data

__all__ = ["FoldArrays", "PreparedData", "inspect_data", "prepare_data"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("hpo.data.prepare"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
