"""The searcher and the scheduler, built from the config (one place for both, shared by
``hpo sweep``, ``hpo resume`` and the benchmarks through hpo.sweep.sweep.Sweep)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray import tune
from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining
from ray.tune.search.optuna import OptunaSearch

from hpo.errors import ConfigError
from hpo.space import SearchSpace, grid_values
from hpo.sweep.asha import SuccessiveHalving
from hpo.sweep.median import MedianStopping
from hpo.sweep.optuna_bridge import StudySearcher, TuneDrivenGridSampler


def make_sampler(
    cfg: DictConfig, space: SearchSpace, concurrent: int | None
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of ``searcher.name``, seeded by ``seed``."""
    s = cfg.searcher
    seed = int(cfg.seed)
    liar = s.constant_liar
    parallel = concurrent is None or concurrent > 1
    constant_liar = parallel if liar in ("auto", None) else bool(liar)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=s.n_startup_trials,
            multivariate=s.multivariate,
            constant_liar=constant_liar,
        )
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        return TuneDrivenGridSampler({k: grid_values(k, d) for k, d in space.items()}, seed=seed)
    if s.name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=s.n_startup_trials)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=s.n_startup_trials,
            warn_independent_sampling=False,
            # the stopped trials' last values: CMA-ES's own treatment of pruned trials
            consider_pruned_trials=s.stopped_as == "pruned",
        )
    raise ConfigError(f"config key `searcher.name`: unknown searcher {s.name!r}.")


def make_searcher(cfg: DictConfig, space: SearchSpace, concurrent: int | None, journal: str | Path):
    """hpo's StudySearcher over an Optuna study in ``journal`` (``searcher.bridge=stock``:
    Ray's own OptunaSearch, in memory, for comparison only)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(cfg, space, concurrent)
    if cfg.searcher.get("bridge", "fidelity") == "stock":
        return OptunaSearch(space=dict(space), metric=cfg.metric, mode=cfg.mode, sampler=sampler)
    return StudySearcher(
        space, cfg.metric, cfg.mode, sampler, journal, stopped_as=cfg.searcher.stopped_as
    )


def tune_domain(dist):
    """An Optuna distribution as the Ray Tune domain PBT resamples from."""
    if isinstance(dist, CategoricalDistribution):
        return tune.choice(list(dist.choices))
    if isinstance(dist, IntDistribution):
        if dist.log:
            return tune.lograndint(dist.low, dist.high + 1)
        return tune.qrandint(dist.low, dist.high, dist.step)
    if isinstance(dist, FloatDistribution):
        if dist.log:
            return tune.loguniform(dist.low, dist.high)
        if dist.step:
            return tune.quniform(dist.low, dist.high, dist.step)
        return tune.uniform(dist.low, dist.high)
    raise ConfigError(f"search space: PBT cannot resample a {type(dist).__name__}.")


def make_scheduler(cfg: DictConfig, space: SearchSpace | None = None):
    """ASHA, asynchronous Hyperband, median stopping, PBT or FIFO over the trials' own
    epoch count (which survives a resume from any checkpoint). ``space``: what PBT
    explores (its mutations)."""
    s = cfg.scheduler
    grace = min(s.grace_period, s.max_t)
    if s.name == "median":
        return MedianStopping(cfg.metric, cfg.mode, grace_period=grace, min_samples=s.min_samples)
    if s.name == "pbt":
        # exploit: a trial in the bottom quantile_fraction restarts from a top trial's
        # checkpoint; explore: its hyperparameters perturbed (x0.8 / x1.2, or a neighbour
        # choice) or resampled. Ray's own PBT; its history is not resumable.
        return PopulationBasedTraining(
            time_attr="epoch",
            metric=cfg.metric,
            mode=cfg.mode,
            perturbation_interval=s.perturbation_interval,
            quantile_fraction=s.quantile_fraction,
            resample_probability=s.resample_probability,
            hyperparam_mutations={k: tune_domain(d) for k, d in (space or {}).items()},
        )
    if s.name in ("asha", "hyperband"):
        return SuccessiveHalving(
            cfg.metric,
            cfg.mode,
            max_t=s.max_t,
            grace_period=grace,
            reduction_factor=s.reduction_factor,
            brackets=1 if s.name == "asha" else s.brackets,
            seed=int(cfg.seed),
        )
    return FIFOScheduler()
