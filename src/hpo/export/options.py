"""The ``export.*`` keys, checked before the sweep starts: a typo there would otherwise
surface only after every trial has run."""

from __future__ import annotations

from typing import Any

from hpo.export.baselines import baselines_enabled
from hpo.export.calibration import calibration_method
from hpo.export.pareto import pick_options
from hpo.export.refit import export_strategy


def check_export_options(cfg: Any) -> None:
    """ConfigError naming the key for a bad ``export.strategy``, ``export.baselines`` or
    ``export.calibration``, ``export.pareto_pick`` / ``export.pareto_weights``."""
    export_strategy(cfg)
    baselines_enabled(cfg)
    calibration_method(cfg)
    pick_options(cfg)
