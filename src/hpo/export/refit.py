"""Train the model(s) to export from the best trial's hyperparameters.

Two steps, both with hpo.train.FoldTrainer and the sweep's seed:

* replay: the best trial's k fold-models are trained again on the sweep's folds, which
  reproduces the trial (same seed, folds and thread count) and gives its per-fold
  learning curves for the report; ``ensemble`` keeps these fold-models (each with its
  early-stopping weights at the best epoch) and averages them;
* refit (the default strategy): one model on all non-test rows, preprocessing fitted on
  those rows once, for the median of the folds' best epochs (rounded up), without early
  stopping since no rows are left to stop on. Its input width is that preprocessing's
  output (which can differ from the folds' merged layout: a category only some train
  parts held); the model is built for it.

Every model keeps the preprocessing fitted on its own training rows and the column
layout of its input, so the export applies exactly what the model was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.compose import ColumnTransformer

from hpo.config import validate_config
from hpo.data.prepare import FoldArrays, PreparedData, TrialData, fit_fold
from hpo.data.preprocessing import fit_preprocessor, output_names
from hpo.errors import ConfigError
from hpo.train import FoldTrainer

STRATEGIES = ("refit", "ensemble")


@dataclass
class TrainedModels:
    """The models to export, each with the preprocessing fitted on its own training rows."""

    strategy: str
    modules: list[Any]
    preprocessors: list[ColumnTransformer]
    training: list[FoldArrays]  # what each module was trained on (to check the export)
    layouts: list[list[str]]  # each module's input columns
    info: dict[str, Any] = field(default_factory=dict)
    # the replayed fold-models (early-stopping weights), whose out-of-fold predictions
    # calibrate the export (hpo.export.calibration)
    fold_modules: list[Any] = field(default_factory=list)

    @property
    def y_means(self) -> list[float]:
        return [float(f.y_mean) for f in self.training]

    @property
    def y_stds(self) -> list[float]:
        return [float(f.y_std) for f in self.training]


def export_strategy(cfg: DictConfig) -> str:
    strategy = (cfg.get("export") or {}).get("strategy", "refit")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"config key `export.strategy`: must be refit or ensemble, got {strategy!r}."
        )
    return strategy


def best_trial_config(cfg: DictConfig, params: dict[str, Any]) -> DictConfig:
    """The run's config with the best trial's hyperparameters set (no search space left)."""
    best = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key, value in params.items():
        OmegaConf.update(best, key, value, merge=False)
    best.search_space = {}
    return validate_config(best)


def refit_epochs(
    fold_best_epochs: list[int] | None, fallback: int, monitor: str = "val_loss"
) -> tuple[int, str]:
    """The refit's epoch count and a sentence saying how it was chosen."""
    epochs = [int(e) for e in fold_best_epochs or [] if e]
    if not epochs:
        return fallback, f"the best trial's epoch ({fallback}); no fold best epochs recorded"
    chosen = max(1, math.ceil(float(np.median(epochs))))
    return chosen, (
        f"median of the best trial's fold best epochs {epochs} (early stopping on each "
        f"fold's {monitor}), rounded up: {chosen}"
    )


def _device(cfg: DictConfig) -> str:
    use_gpu = float(cfg.resources.gpus_per_trial) > 0 and torch.cuda.is_available()
    return "cuda" if use_gpu else "cpu"


class _Threads:
    """Train with the trial's thread count, so the replay repeats the trial's arithmetic."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self.saved = torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.count)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.saved)


def replay_best_trial(
    prepared: PreparedData, best_cfg: DictConfig, best_epoch: int, last_epoch: int
) -> tuple[dict[str, Any], list[Any]]:
    """Retrain the best trial's folds up to ``last_epoch``.

    Returns the replay's record (per-fold histories, the CV score at ``best_epoch``) and
    the fold-models with their early-stopping weights as of ``best_epoch``.
    """
    plain = OmegaConf.to_container(best_cfg, resolve=True)
    trainer = FoldTrainer(
        prepared.trial_data,
        plain["model"],
        plain["optim"],
        plain["trainer"],
        seed=int(best_cfg.seed),
        device=_device(best_cfg),
    )
    at_best, modules = None, []
    while not trainer.finished and trainer.epoch < max(best_epoch, last_epoch):
        summary = trainer.run_epoch()
        if summary.epoch == best_epoch:
            at_best = summary
            modules = [m.cpu() for m in trainer.fold_modules(best=True, lightning=False)]
    if not modules:  # the replay ended before best_epoch (it did not repeat the trial)
        modules = [m.cpu() for m in trainer.fold_modules(best=True, lightning=False)]
    record = {
        "epochs": trainer.epoch,
        "histories": trainer.fold_histories(),
        "cv_at_best_epoch": dict(at_best.metrics) if at_best else None,
        "fold_best_epochs": at_best.fold_best_epochs if at_best else None,
    }
    return record, modules


def refit_all_rows(
    prepared: PreparedData, best_cfg: DictConfig, epochs: int
) -> tuple[Any, ColumnTransformer, FoldArrays, list[dict[str, float]]]:
    """One model on every non-test row for ``epochs`` epochs (no early stopping), its
    input the output columns of preprocessing fitted on those rows."""
    rest = prepared.features.iloc[prepared.train_idx].reset_index(drop=True)
    y_rest = prepared.y[prepared.train_idx]
    rows = np.arange(len(rest))
    preprocessor = fit_preprocessor(rest, best_cfg.data)
    # "val" is the training rows themselves: nothing is held out to stop on.
    arrays = fit_fold(
        rest,
        y_rest,
        rows,
        rows,
        prepared.task,
        best_cfg.data,
        preprocessor,
        target_transform=prepared.target_transform.name,
    )
    layout = output_names(preprocessor)
    data = TrialData(
        [arrays],
        len(layout),
        prepared.trial_data.output_dim,
        prepared.task,
        prepared.classes,
        feature_names=layout,
    )
    plain = OmegaConf.to_container(best_cfg, resolve=True)
    trainer_cfg = {**plain["trainer"], "max_epochs": epochs, "patience": epochs + 1}
    trainer = FoldTrainer(
        data,
        plain["model"],
        plain["optim"],
        trainer_cfg,
        seed=int(best_cfg.seed),
        device=_device(best_cfg),
    )
    while not trainer.finished:
        trainer.run_epoch()
    (module,) = trainer.fold_modules(best=False, lightning=False)
    return module.cpu(), preprocessor, arrays, trainer.fold_histories()[0]


def fold_preprocessors(prepared: PreparedData, data_cfg: Any) -> list[ColumnTransformer]:
    """Each fold's preprocessing, fitted on that fold's train part: the sweep's own
    (``prepared.fold_preprocessors``), or fitted again the same way if it is not kept."""
    if prepared.fold_preprocessors:
        return list(prepared.fold_preprocessors)
    rest = prepared.features.iloc[prepared.train_idx].reset_index(drop=True)
    return [fit_preprocessor(rest.iloc[f.train_rows], data_cfg) for f in prepared.trial_data.folds]


def train_models(
    prepared: PreparedData, best_cfg: DictConfig, best: dict[str, Any], last_epoch: int
) -> TrainedModels:
    """Replay the best trial, then refit or keep its fold-models, as export.strategy says."""
    strategy = export_strategy(best_cfg)
    with _Threads(int(best_cfg.resources.cpus_per_trial)):
        replay, fold_modules = replay_best_trial(prepared, best_cfg, int(best["epoch"]), last_epoch)
        info: dict[str, Any] = {"strategy": strategy, "replay": replay}
        if strategy == "ensemble":
            info["how"] = (
                f"the best trial's {len(fold_modules)} fold-models, each with its early-stopping "
                f"weights as of epoch {best['epoch']}, averaged (probabilities or values)"
            )
            layout = list(prepared.trial_data.feature_names)
            return TrainedModels(
                strategy,
                fold_modules,
                fold_preprocessors(prepared, best_cfg.data),
                list(prepared.trial_data.folds),
                [layout] * len(fold_modules),
                info,
                fold_modules,
            )
        epochs, how = refit_epochs(best.get("fold_best_epochs"), int(best["epoch"]))
        module, preprocessor, arrays, history = refit_all_rows(prepared, best_cfg, epochs)
    info.update({"epochs": epochs, "how": how, "rows": len(arrays.train_rows), "history": history})
    layout = output_names(preprocessor)
    return TrainedModels(strategy, [module], [preprocessor], [arrays], [layout], info, fold_modules)
