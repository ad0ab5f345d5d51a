"""A real task: hpo's k-fold trials of a LightningModule on one dataset, as a benchmark
objective (the same interface as synthetic.Hartmann6Objective)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from hpo.data.prepare import PreparedData, TrialData, fit_fold, prepare_data
from hpo.space import build_search_space
from hpo.sweep.runner import check_before_ray
from hpo.train.loop import FoldTrainer
from hpo.train.trial import FINISHED_KEY, apply_params, run_trial


class ModelObjective:
    """The config's data, model and search space; trials are hpo's own ``run_trial``.

    Args:
        cfg: the composed config of the task (``hpo.config.compose_config``).
    """

    exact_regret = None  # the optimum of a real task is unknown

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.metric = str(cfg.metric)
        self.mode = str(cfg.mode)
        self.space, _ = build_search_space(cfg.search_space)
        self.prepared: PreparedData = prepare_data(cfg)
        check_before_ray(cfg, self.space, self.prepared.task)  # a bad metric fails here
        self.base_cfg: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)

    def ray_trainable(self):
        """hpo's trial entry point with the fold arrays in Ray's object store."""
        from ray import tune

        return tune.with_parameters(
            run_trial, trial_data=self.prepared.trial_data, base_cfg=self.base_cfg
        )

    def _trainer(self, params: Mapping[str, Any], data: TrialData, **trainer_keys: Any):
        cfg = apply_params(self.base_cfg, dict(params))
        return FoldTrainer(
            data,
            model_cfg=cfg["model"],
            optim=cfg["optim"],
            trainer_cfg={**cfg["trainer"], **trainer_keys},
            seed=int(cfg["seed"]),
        )

    def epochs(self, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The reports of one trial, one per epoch, as run_trial makes them (no Ray)."""
        torch.set_num_threads(max(1, int(self.cfg.resources.cpus_per_trial)))
        trainer = self._trainer(params, self.prepared.trial_data)
        while not trainer.finished:
            summary = trainer.run_epoch()
            yield {
                **summary.metrics,
                "epoch": summary.epoch,
                "fold_best_epochs": summary.fold_best_epochs,
                FINISHED_KEY: summary.finished,
            }

    def test_scores(self, params: Mapping[str, Any], epoch: int) -> dict[str, float]:
        """Train the chosen configuration on all non-test rows for ``epoch`` epochs and
        score it on the held-out test rows.

        Preprocessing is fit on the non-test rows only and there is no early stopping
        (that would look at the test rows). hpo.export's refit can replace this.
        """
        prepared = self.prepared
        refit = fit_fold(
            prepared.features,
            prepared.y,
            prepared.train_idx,
            prepared.test_idx,
            prepared.task,
            self.cfg.data,
        )
        data = TrialData(
            [refit], refit.X_train.shape[1], prepared.trial_data.output_dim, prepared.task, None
        )
        epochs = max(1, int(epoch))
        trainer = self._trainer(params, data, max_epochs=epochs, patience=epochs + 1)
        summary = None
        while not trainer.finished:
            summary = trainer.run_epoch()
        # The single "fold" validates on the test rows: its val_* are test metrics.
        return {
            f"test_{name[len('val_') :]}": float(value)
            for name, value in summary.metrics.items()
            if name.startswith("val_") and not name.endswith("_std")
        }


def refit_epochs(report: Mapping[str, Any]) -> int:
    """Epochs to refit the chosen configuration for: the median of its folds' early-stopping
    epochs at the chosen report, else that report's epoch."""
    best_epochs = report.get("fold_best_epochs")
    if isinstance(best_epochs, (list, tuple, np.ndarray)) and len(best_epochs) > 0:
        return max(1, int(round(float(np.median(np.asarray(best_epochs, dtype=float))))))
    return max(1, int(report["epoch"]))
