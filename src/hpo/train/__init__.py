"""One trial: k fold-models trained epoch by epoch with per-fold early stopping."""

from hpo.train.loop import EpochSummary, FoldTrainer

__all__ = ["EpochSummary", "FoldTrainer"]
