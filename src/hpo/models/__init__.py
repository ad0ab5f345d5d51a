"""LightningModules. The built-in tabular MLP; user modules come in by `_target_`."""

from hpo.models.build import build_module

__all__ = ["build_module"]
