"""The outside reference: Optuna run natively in one process, TPE with its HyperbandPruner.

No Ray: the driver asks Optuna for a configuration, runs its epochs one by one (the same
fold training hpo's trials do, or the synthetic function), reports each epoch to the
trial and stops when the pruner says so. Trials run one at a time: Optuna's ``n_jobs``
threads would share torch's global RNG, which each fold's training sets and reads.
"""

from __future__ import annotations

import math

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from benchmarks.anytime import AnytimeLog
from hpo.errors import HPOError
from hpo.sweep.runner import make_sampler
from hpo.train.trial import FINISHED_KEY


def make_pruner(cfg: DictConfig) -> optuna.pruners.HyperbandPruner:
    """Optuna's HyperbandPruner on the scheduler's rungs (grace period, max_t, factor)."""
    s = cfg.scheduler
    return optuna.pruners.HyperbandPruner(
        min_resource=min(int(s.grace_period), int(s.max_t)),
        max_resource=int(s.max_t),
        reduction_factor=int(s.reduction_factor),
    )


def run_native_optuna(objective, cfg: DictConfig, log: AnytimeLog, n_workers: int) -> AnytimeLog:
    """Ask-and-tell TPE + HyperbandPruner until ``log`` says the budget is spent.

    ``n_workers`` is accepted for the common interface; trials run one at a time.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if objective.mode == "min" else "maximize",
        sampler=make_sampler(cfg, objective.space, concurrent=1),
        pruner=make_pruner(cfg),
    )
    better = (lambda a, b: a < b) if objective.mode == "min" else (lambda a, b: a > b)
    while not log.exhausted():
        trial = study.ask(fixed_distributions=dict(objective.space))
        best, state = None, TrialState.COMPLETE
        try:
            for report in objective.epochs(trial.params):
                log.add(trial.number, trial.params, report)
                value = report[objective.metric]
                if not math.isfinite(value):
                    state = TrialState.FAIL
                    break
                if best is None or better(value, best):
                    best = value
                trial.report(value, int(report["epoch"]))
                if report[FINISHED_KEY]:
                    break
                if trial.should_prune() or log.exhausted():
                    state = TrialState.PRUNED
                    break
        except HPOError:  # a diverging trial: recorded as failed, the run goes on
            state = TrialState.FAIL
        if state == TrialState.FAIL:
            log.failed += 1
        # COMPLETE with the best epoch's value, as hpo's bridge tells Optuna.
        study.tell(trial, best if state == TrialState.COMPLETE else None, state=state)
    return log
