"""Asynchronous successive halving (ASHA) and asynchronous Hyperband, with hpo's own rungs.

The rungs are hpo's state, not a copy of another library's internals: ``Rungs`` is a
plain record (milestone -> {trial id: value}) that ``state_dict()`` writes out and
``load_state_dict()`` reads back, and ``SchedulerState`` hands it to Ray Tune as
callback state, saved with every experiment snapshot (alongside the trial statuses, so
the two agree after a crash) and given back when ``hpo resume`` restores the sweep.

The decisions are those of Li et al. (2018), as Ray's ``ASHAScheduler`` makes them: a
trial reaching a rung is recorded there, and stopped when its value is below the
``1 - 1/reduction_factor`` quantile of the values recorded at that rung so far.
With ``brackets > 1`` it is asynchronous Hyperband: bracket ``s`` starts its rungs at
``grace_period * reduction_factor**s``, and each new trial draws its bracket (seeded) with
the weights Ray uses, so brackets with more rungs get more trials.
"""

from __future__ import annotations

import math
import random
from types import SimpleNamespace
from typing import Any

import numpy as np
from ray.tune import Callback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


def first_results(rows: list[dict]):
    """trials.jsonl's result rows, each (trial, epoch) once, at its first value: what an
    uninterrupted sweep's scheduler saw (a replay after resume feeds it these)."""
    seen = set()
    for row in rows:
        key = (row["trial_id"], row.get("epoch"))
        if row.get("event") == "result" and key not in seen:
            seen.add(key)
            yield row


class Rungs:
    """One bracket's rungs: milestone epochs, highest first, each with its records."""

    def __init__(self, grace_period: int, max_t: int, reduction_factor: float, s: int) -> None:
        count = int(math.log(max_t / grace_period) / math.log(reduction_factor) - s + 1)
        self.reduction_factor = reduction_factor
        self.records: list[tuple[float, dict[str, float]]] = [
            (grace_period * reduction_factor ** (k + s), {}) for k in reversed(range(count))
        ]

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        if not recorded:
            return None
        return float(
            np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction_factor) * 100)
        )

    def judge(self, trial_id: str, epoch: int, reward: float) -> str:
        """Record ``reward`` (higher is better) at the rung ``epoch`` reached; STOP or
        CONTINUE."""
        for milestone, recorded in self.records:
            if epoch < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(recorded)
            recorded[trial_id] = reward
            if cutoff is not None and reward < cutoff:
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE


class SuccessiveHalving(FIFOScheduler):
    """ASHA (``brackets=1``) or asynchronous Hyperband over the trials' ``epoch``.

    Args:
        metric, mode: the value to judge and which way is better.
        max_t: the top fidelity (``trainer.max_epochs``).
        grace_period: epochs every trial gets before it can be stopped.
        reduction_factor: 1 in ``reduction_factor`` trials goes on at each rung.
        brackets: Hyperband's brackets (1: plain ASHA).
        seed: seeds the draw of each trial's bracket.
    """

    def __init__(
        self,
        metric: str,
        mode: str,
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
        brackets: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.metric_name, self.mode, self.max_t = metric, mode, max_t
        self.brackets = [Rungs(grace_period, max_t, reduction_factor, s) for s in range(brackets)]
        self.trial_bracket: dict[str, int] = {}
        self.num_stopped = 0
        self._rng = random.Random(seed)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # set in the constructor, from the same config keys

    def on_trial_add(self, tune_controller, trial) -> None:
        if trial.trial_id in self.trial_bracket:
            return  # a restored trial keeps its bracket
        sizes = np.array([len(b.records) for b in self.brackets], dtype=float)
        weights = np.exp(sizes - sizes.max())
        chosen = self._rng.choices(range(len(self.brackets)), weights=weights.tolist())[0]
        self.trial_bracket[trial.trial_id] = chosen

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch, value = result.get("epoch"), result.get(self.metric_name)
        if epoch is None or value is None or not math.isfinite(value):
            return TrialScheduler.CONTINUE
        if trial.trial_id not in self.trial_bracket:
            self.on_trial_add(tune_controller, trial)
        reward = -value if self.mode == "min" else value
        rungs = self.brackets[self.trial_bracket[trial.trial_id]]
        action = rungs.judge(trial.trial_id, int(epoch), float(reward))
        self.num_stopped += action == TrialScheduler.STOP
        if int(epoch) >= self.max_t:  # the top fidelity: done (as Ray's ASHA)
            return TrialScheduler.STOP
        return action

    def judged_epochs(self) -> set[int]:
        """The epochs at which a result can stop a trial: every bracket's milestones
        (a trial's first epoch at or past each) and the top fidelity."""
        epochs = {math.ceil(m) for bracket in self.brackets for m, _ in bracket.records}
        return epochs | {int(self.max_t)}

    def replay(self, rows: list[dict]) -> None:
        """Rebuild the rungs from trials.jsonl's rows (hpo's own record of every result,
        written as it arrived): each trial's bracket drawn in creation order, each
        (trial, epoch) judged once, at its first value, as the uninterrupted sweep did."""
        first = {}
        for row in rows:
            first.setdefault(row["trial_id"], row.get("trial_index", 0))
        for trial_id in sorted(first, key=first.get):
            self.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
        for row in first_results(rows):
            self.on_trial_result(None, SimpleNamespace(trial_id=row["trial_id"]), row)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rungs": [[(m, dict(r)) for m, r in b.records] for b in self.brackets],
            "trial_bracket": dict(self.trial_bracket),
            "num_stopped": self.num_stopped,
            "rng": self._rng.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["rungs"]) != len(self.brackets):
            raise ValueError(
                f"saved state has {len(state['rungs'])} brackets, this scheduler "
                f"{len(self.brackets)}"
            )
        for bracket, rungs in zip(self.brackets, state["rungs"]):
            bracket.records = [(m, dict(r)) for m, r in rungs]
        self.trial_bracket.update(state["trial_bracket"])
        self.num_stopped = state["num_stopped"]
        self._rng.setstate(state["rng"])

    def rung_records(self, bracket: int = 0) -> dict[float, dict[str, float]]:
        """Milestone -> {trial_id: the metric value recorded there}, in the metric's own
        sign."""
        sign = -1.0 if self.mode == "min" else 1.0
        return {
            milestone: {trial_id: sign * value for trial_id, value in recorded.items()}
            for milestone, recorded in sorted(self.brackets[bracket].records)
        }

    def debug_string(self) -> str:
        return f"SuccessiveHalving: {len(self.brackets)} bracket(s), {self.num_stopped} stopped"


class SchedulerState(Callback):
    """Saves ``scheduler.state_dict()`` with each experiment snapshot; loads it on restore.

    Args:
        scheduler: a scheduler with ``state_dict`` / ``load_state_dict``.
    """

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any] | None:
        return {"scheduler": self.scheduler.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
