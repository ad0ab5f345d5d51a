"""The sweep: Ray Tune with ASHA and Optuna samplers over k-fold CV trials.

The public names load on first use (PEP 562): ``hpo resume`` checks a run directory with
``hpo.sweep.storage_trust`` and ``hpo.sweep.lock`` before anything else, and importing
those must not pull in the runner (Ray Tune, Lightning, torch: about 10 s on 2 cores)
just to print a one-line error.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.sweep.runner import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("hpo.sweep.runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
