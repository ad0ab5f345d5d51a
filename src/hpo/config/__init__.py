"""Config: Hydra composition, structured schemas, validation.

The public names load on first use (PEP 562): a Ray worker reads ``hpo.config.targets``
to start a trial, and importing it must not pull in Hydra, OmegaConf and Optuna through
``hpo.config.compose``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.config.compose import compose_config, conf_dir, load_run_config, validate_config

__all__ = ["compose_config", "conf_dir", "load_run_config", "validate_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("hpo.config.compose"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
