"""Every model-based searcher learns under ASHA: once enough trials were stopped, its
proposals come from its model, not from its random start-up.

Each test runs a real sweep (real Ray, ASHA stopping most trials), then replays every
trial's ask on the study as it stood then (the trials finished before it started) and
asks the sampler what its model proposes: an empty proposal means Optuna fell back to
its random start-up for that trial.
"""

from __future__ import annotations

import copy as copy_module

import optuna
import pytest
from optuna.trial import TrialState

from hpo.space import build_search_space
from hpo.sweep import run_sweep
from hpo.sweep.optuna_bridge import JOURNAL_FILE, STATUS_ATTR, load_run_study
from hpo.sweep.runner import make_sampler

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)

STARTUP = 4
SWEEP = [
    "budget.num_samples=10",
    "budget.max_concurrent_trials=1",
    "trainer.patience=6",  # trials end by ASHA or at max_epochs, not by early stopping
    "scheduler.reduction_factor=3",  # rungs at epochs 1 and 3: 1 in 3 goes on
    f"searcher.n_startup_trials={STARTUP}",
    "search_space.model.activation=null",  # CMA-ES models numeric keys only
    "search_space.model.hidden_dim=null",
    "cluster.num_cpus=1",
]


def study_as_of(study: optuna.Study, trial) -> tuple[optuna.Study, object]:
    """A copy of ``study`` holding the trials that had finished when ``trial`` started,
    and a new running trial in it to ask for (the sampler writes on it)."""
    copy = optuna.create_study(direction=study.direction)
    for t in study.trials:
        if t.state.is_finished() and t.datetime_complete <= trial.datetime_start:
            copy.add_trial(t)
    copy.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    return copy, copy.get_trials(deepcopy=False)[-1]


def as_stock_bridge_told_them(study: optuna.Study) -> optuna.Study:
    """The same trials with every stopped one PRUNED, as main's bridge told them."""
    copy = optuna.create_study(direction=study.direction)
    for t in study.trials:
        if t.user_attrs.get(STATUS_ATTR) == "stopped":
            t = copy_module.deepcopy(t)  # (keeps its start and end times)
            t.state, t.values = TrialState.PRUNED, None
        copy.add_trial(t)
    return copy


def model_proposals(sampler, study: optuna.Study) -> list[bool]:
    """Per trial: did the sampler's model (relative sampling) propose its parameters?"""
    used = []
    for trial in study.trials:
        before, asking = study_as_of(study, trial)
        space = sampler.infer_relative_search_space(before, asking)
        used.append(bool(space) and bool(sampler.sample_relative(before, asking, space)))
    return used


def independent_model_proposals(cfg, space, study: optuna.Study) -> list[bool]:
    """Per trial, for a sampler that samples each key on its own (univariate TPE, the
    default): did its model propose the first numeric key? The same-seeded sampler kept in
    its random start-up draws the start-up's value; the model draws another."""
    from omegaconf import OmegaConf

    key, dist = next((k, d) for k, d in space.items() if not hasattr(d, "choices"))
    never = OmegaConf.merge(cfg, {"searcher": {"n_startup_trials": 10**6}})
    used = []
    for trial in study.trials:
        before, asking = study_as_of(study, trial)
        model = make_sampler(cfg, space, 1).sample_independent(before, asking, key, dist)
        startup = make_sampler(never, space, 1).sample_independent(before, asking, key, dist)
        used.append(model != startup)
    return used


@pytest.mark.parametrize("searcher", ["tpe", "gp", "cmaes"])
def test_model_based_sampler_proposes_from_its_model_after_stopped_trials(
    ray_local, small_cfg, searcher
):
    cfg = small_cfg(*SWEEP, f"searcher={searcher}")
    result = run_sweep(cfg, stream=None)
    study = load_run_study(result.run_dir / JOURNAL_FILE)  # the run's own search state
    status = [t.user_attrs.get(STATUS_ATTR) for t in study.trials]
    assert len(status) == 10 and status.count("stopped") >= 3  # ASHA really stopped trials
    space, _ = build_search_space(cfg.search_space)
    if searcher == "tpe" and not cfg.searcher.multivariate:
        used = independent_model_proposals(cfg, space, study)
    else:
        used = model_proposals(make_sampler(cfg, space, 1), study)
    # the first STARTUP trials are the random start-up; from then on the model proposes
    assert not any(used[:STARTUP])
    assert used[-1] and sum(used) >= len(used) - STARTUP - 2
    if searcher == "gp":
        # told as PRUNED, the stopped trials would have left GP in its start-up longer
        stock = model_proposals(make_sampler(cfg, space, 1), as_stock_bridge_told_them(study))
        assert sum(stock) < sum(used)
    print(f"\n{searcher}: model proposed {sum(used)}/{len(used)} trials; statuses {status}")
