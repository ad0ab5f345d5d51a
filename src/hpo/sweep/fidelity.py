"""What a model-based sampler learns from a trial the scheduler stopped early.

A trial that ASHA stopped at epoch ``r`` has a value at a lower fidelity than one that
trained to the end. GP (Optuna's GPSampler) learns only from COMPLETE trials, so telling
it stopped trials as PRUNED leaves it in its random start-up for most of a sweep (in the
default sweep 5 of 40 trials complete). ``imputed_value`` lifts the stopped trial's last
value to full fidelity with the typical change seen, from epoch ``r`` to their best
value, by the trials that went on and completed (the median, so one odd learning curve
does not decide it); with no such trial yet, the value stays as it is. A stopped trial
was worse than its rung's cut-off, so its imputed value stays worse than most
completed trials'.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState


def imputed_value(study: optuna.Study, stopped: FrozenTrial, status_attr: str) -> float:
    """The full-fidelity estimate of ``stopped``'s value (see the module docstring).

    Args:
        study: the run's study (its completed trials carry ``status_attr="completed"``).
        stopped: the stopped trial, with its intermediate values (epoch -> value).
        status_attr: the user attribute that says what a trial really did.
    """
    completed = [
        (t.intermediate_values, t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(status_attr) == "completed"
    ]
    return lifted_value(stopped.intermediate_values, completed)


def lifted_value(curve: dict[int, float], completed: list[tuple[dict[int, float], float]]) -> float:
    """``curve``'s last value plus the median gain, from that epoch to their final
    value, of the ``completed`` trials (their curve, their final value) that reached it."""
    step = max(curve)
    last = curve[step]
    gains = [final - seen[step] for seen, final in completed if step in seen]
    return last + statistics.median(gains) if gains else last
