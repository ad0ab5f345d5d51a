"""ASHA whose rung records survive ``Tuner.restore``.

Ray Tune restores a sweep's trials, searcher and callbacks from the experiment folder,
but the scheduler comes back from ``tuner.pkl``, pickled when the Tuner was built: an
ASHA with empty rungs. After a resume it would then judge new trials against the
post-resume trials only (and let the first ones through unjudged). Here the rungs
travel as callback state, which Tune saves with every experiment snapshot (alongside
the trial statuses and the searcher, so the three agree) and hands back on restore.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler


class ResumableASHA(ASHAScheduler):
    """``ASHAScheduler`` with ``state_dict()`` / ``load_state_dict()`` of its rungs."""

    def state_dict(self) -> dict[str, Any]:
        position = {id(bracket): i for i, bracket in enumerate(self._brackets)}
        return {
            "rungs": [
                [(milestone, dict(recorded)) for milestone, recorded in bracket._rungs]
                for bracket in self._brackets
            ],
            "trial_bracket": {
                trial_id: position[id(bracket)] for trial_id, bracket in self._trial_info.items()
            },
            "num_stopped": self._num_stopped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["rungs"]) != len(self._brackets):
            raise ValueError(
                f"saved ASHA state has {len(state['rungs'])} brackets, this scheduler "
                f"{len(self._brackets)}"
            )
        for bracket, rungs in zip(self._brackets, state["rungs"]):
            bracket._rungs = [(milestone, dict(recorded)) for milestone, recorded in rungs]
        self._trial_info.update(
            {trial_id: self._brackets[i] for trial_id, i in state["trial_bracket"].items()}
        )
        self._num_stopped = state["num_stopped"]

    def rung_records(self) -> dict[float, dict[str, float]]:
        """Milestone -> {trial_id: the metric value recorded there}, of the first bracket,
        in the metric's own sign (ASHA stores ``-value`` when minimizing)."""
        sign = self._metric_op or 1.0
        return {
            milestone: {trial_id: sign * value for trial_id, value in recorded.items()}
            for milestone, recorded in sorted(self._brackets[0]._rungs)
        }


class SchedulerState(Callback):
    """Saves ``scheduler.state_dict()`` with each experiment snapshot; loads it on restore.

    Args:
        scheduler: a scheduler with ``state_dict`` / ``load_state_dict``.
    """

    def __init__(self, scheduler: ResumableASHA) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any] | None:
        return {"scheduler": self.scheduler.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
