"""hpo: distributed hyperparameter optimization for PyTorch Lightning models."""

__version__ = "0.1.0"
