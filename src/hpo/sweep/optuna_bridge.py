"""A fidelity-aware bridge from Ray Tune to Optuna.

Ray's stock ``OptunaSearch`` tells Optuna that a trial which ASHA stopped is COMPLETE
with its last, low-epoch value, so TPE treats cheap partial results as full ones (and
the value that made ASHA stop it was never reported as an intermediate value, since Tune
skips ``on_trial_result`` for the result that gets a STOP decision). Here:

* a trial that ended by itself (its last result carries ``trial_finished=True``) is
  COMPLETE with its best epoch's value, the value the sweep ranks trials by;
* a trial stopped by the scheduler is PRUNED, after its final value is reported as the
  intermediate value of its last epoch, so Optuna's pruned-trial handling applies (TPE
  ranks pruned trials below complete ones, by the step they reached and their value);
* a failed or diverged trial (error, NaN/inf) is FAIL.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from hpo.train.trial import FINISHED_KEY


class FidelityAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that records scheduler-stopped trials as PRUNED."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._best_values: dict[str, float] = {}

    def _better(self, a: float, b: float | None) -> bool:
        if b is None:
            return True
        return a < b if self._mode == "min" else a > b

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        if self._better(value, self._best_values.get(trial_id)):
            self._best_values[trial_id] = value
        super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        value = result.get(self.metric) if result else None
        finite = value is not None and math.isfinite(value)
        if error or not finite:
            self._ot_study.tell(ot_trial, None, state=TrialState.FAIL)
        elif result.get(FINISHED_KEY):
            if self._better(value, self._best_values.get(trial_id)):
                self._best_values[trial_id] = value
            self._ot_study.tell(ot_trial, self._best_values[trial_id], state=TrialState.COMPLETE)
        else:
            step = int(result[TRAINING_ITERATION])
            if step not in ot_trial.storage.get_trial(ot_trial._trial_id).intermediate_values:
                ot_trial.report(value, step)
            self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    @property
    def study(self):
        """The Optuna study behind the search (for reports and tests)."""
        return self._ot_study


class TuneDrivenGridSampler(optuna.samplers.GridSampler):
    """``GridSampler`` for trials that Ray Tune drives, not ``study.optimize``.

    Optuna's ``after_trial`` calls ``study.stop()`` once the grid is used up, which raises
    outside ``study.optimize`` (here: on telling the grid's last trial). Tune already
    stops at the grid's size (``budget.num_samples`` is capped to it), so there is
    nothing to stop.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None
