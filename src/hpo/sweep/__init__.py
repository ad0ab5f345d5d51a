"""The sweep: Ray Tune with ASHA and Optuna samplers over k-fold CV trials."""

from hpo.sweep.runner import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]
