"""TensorBoard event files for a sweep, written on the driver as results arrive, for both
engines: per trial, every fold-mean metric and each fold's own value per epoch, and the
hparams view of the whole sweep (each trial's hyperparameters and its best ``metric``).

    tensorboard --logdir RUN_DIR/tensorboard

Written with tensorboardX (which Ray Tune already depends on); viewing needs the
``tensorboard`` package. A user's own Lightning loggers (``trainer.logger``) write beside
this, per fold, where they are configured to.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ray.tune import Callback

from hpo.rundir import TENSORBOARD

TENSORBOARD_DIR = TENSORBOARD
_SKIP = {"epoch", "folds_active", "fold_best_epochs"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class TensorBoardWriter(Callback):
    """A Tune callback: one event-file folder per trial under ``RUN_DIR/tensorboard``.

    Args:
        run_dir: the local run directory.
        metric, mode: the sweep's objective, for the hparams view.
        metric_names: the fold-mean metrics the trials report (both engines' names).
    """

    def __init__(self, run_dir: Path, metric: str, mode: str, metric_names) -> None:
        self.root = Path(run_dir) / TENSORBOARD_DIR
        self.metric, self.mode = metric, mode
        self.names = list(metric_names)
        self._writers: dict[str, Any] = {}
        self._best: dict[str, float] = {}

    def __getstate__(self) -> dict:  # Tune pickles callbacks; open writers stay behind
        return {**self.__dict__, "_writers": {}}

    def _writer(self, trial_id: str):
        from tensorboardX import SummaryWriter

        if trial_id not in self._writers:
            self._writers[trial_id] = SummaryWriter(str(self.root / f"trial_{trial_id}"))
        return self._writers[trial_id]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = int(result.get("epoch", 0))
        writer = self._writer(trial.trial_id)
        for name in self.names:
            value = _number(result.get(name))
            if value is not None:
                writer.add_scalar(f"{name}/mean", value, epoch)
            for fold, fold_value in enumerate(result.get(f"fold_{name}") or []):
                fold_value = _number(fold_value)
                if fold_value is not None:
                    writer.add_scalar(f"{name}/fold_{fold}", fold_value, epoch)
        value = _number(result.get(self.metric))
        if value is not None:
            best = self._best.get(trial.trial_id)
            better = best is None or (value < best if self.mode == "min" else value > best)
            self._best[trial.trial_id] = value if better else best
        writer.flush()

    def _end(self, trial) -> None:
        writer = self._writers.pop(trial.trial_id, None)
        if writer is None:
            return
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                  for k, v in trial.config.items()}  # fmt: skip
        best = self._best.get(trial.trial_id)
        writer.add_hparams(params, {f"best_{self.metric}": best if best is not None else math.nan},
                           name="hparams")  # fmt: skip
        writer.close()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial)

    def on_experiment_end(self, trials, **info):
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
