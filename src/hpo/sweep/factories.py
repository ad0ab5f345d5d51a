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
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from hpo.config.objectives import objectives
from hpo.errors import ConfigError
from hpo.space import SearchSpace, grid_values
from hpo.sweep.asha import SuccessiveHalving
from hpo.sweep.median import MedianStopping
from hpo.sweep.optuna_bridge import StudySearcher, TuneDrivenGridSampler
from hpo.sweep.racing import FoldRacing


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
    if s.name == "nsga2":
        # NSGA-II is multi-objective by design (one objective also works); tpe, gp and
        # random follow the study's directions by themselves.
        return optuna.samplers.NSGAIISampler(
            seed=seed,
            population_size=int(s.get("population_size", 50)),
            crossover_prob=float(s.get("crossover_prob", 0.9)),
        )
    raise ConfigError(f"config key `searcher.name`: unknown searcher {s.name!r}.")


def make_searcher(cfg: DictConfig, space: SearchSpace, concurrent: int | None, journal: str | Path):
    """hpo's StudySearcher over an Optuna study in ``journal`` (``searcher.bridge=stock``:
    Ray's own OptunaSearch, in memory, for comparison only). Under PBT, which Ray runs
    with no search algorithm, Tune's seeded random sampling of ``tune_space(space)``
    draws the first population (no study is kept)."""
    if cfg.scheduler.name == "pbt":
        return BasicVariantGenerator(max_concurrent=concurrent or 0, random_state=int(cfg.seed))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(cfg, space, concurrent)
    if cfg.searcher.get("bridge", "fidelity") == "stock":
        return OptunaSearch(space=dict(space), metric=cfg.metric, mode=cfg.mode, sampler=sampler)
    return StudySearcher(
        space,
        cfg.metric,
        cfg.mode,
        sampler,
        journal,
        stopped_as=cfg.searcher.stopped_as,
        objectives=objectives(cfg),
    )


def tune_space(space: SearchSpace) -> dict:
    """The search space as Ray Tune domains (PBT's first population is drawn from it)."""
    domains = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            domains[key] = tune.choice(list(dist.choices))
        elif isinstance(dist, IntDistribution):
            domains[key] = (
                tune.lograndint(dist.low, dist.high + 1)
                if dist.log
                else tune.qrandint(dist.low, dist.high, dist.step)
            )
        elif dist.log:
            domains[key] = tune.loguniform(dist.low, dist.high)
        elif dist.step:
            domains[key] = tune.quniform(dist.low, dist.high, dist.step)
        else:
            domains[key] = tune.uniform(dist.low, dist.high)
    return domains


def pbt_mutations(space: SearchSpace) -> dict:
    """What PBT explores: the continuous keys (``interval(...)``: learning rate, weight
    decay, dropout), as Ray Tune domains. Integer and categorical keys (the architecture)
    follow the trial whose checkpoint is copied, so the weights still fit the model."""
    mutations = {
        key: (tune.loguniform if dist.log else tune.uniform)(dist.low, dist.high)
        for key, dist in space.items()
        if isinstance(dist, FloatDistribution) and not dist.step
    }
    if not mutations:
        raise ConfigError(
            "config key `scheduler.name`: pbt explores continuous keys, and the search space "
            "has none; add one such as 'optim.lr=tag(log, interval(1e-4, 1e-2))'."
        )
    return mutations


def make_scheduler(cfg: DictConfig, space: SearchSpace | None = None):
    """ASHA, asynchronous Hyperband, median stopping, PBT or FIFO over the trials' own
    epoch count (which survives a resume from any checkpoint), in a fold race when
    ``scheduler.racing``. ``space``: what PBT explores (its mutations)."""
    scheduler = _epoch_scheduler(cfg, space)
    s = cfg.scheduler
    if s.get("racing"):
        return FoldRacing(
            scheduler, cfg.metric, cfg.mode, s.racing_alpha, s.get("racing_min_epoch", 1)
        )
    return scheduler


def _epoch_scheduler(cfg: DictConfig, space: SearchSpace | None):
    s = cfg.scheduler
    grace = min(s.grace_period, s.max_t)
    if s.name == "median":
        return MedianStopping(cfg.metric, cfg.mode, grace_period=grace, min_samples=s.min_samples)
    if s.name == "pbt":
        # exploit: a trial in the bottom quantile_fraction goes on from a top trial's
        # checkpoint; explore: its continuous hyperparameters perturbed (x0.8 / x1.2) or
        # resampled. Ray's own PBT; its history is not resumable (hpo resume says so).
        return PopulationBasedTraining(
            time_attr="epoch",  # (metric and mode: from tune.run, the sweep's own)
            perturbation_interval=s.perturbation_interval,
            quantile_fraction=s.quantile_fraction,
            resample_probability=s.resample_probability,
            hyperparam_mutations=pbt_mutations(space or {}),
        )
    if s.name in ("asha", "hyperband", "bohb"):  # bohb: hyperband's brackets, with TPE
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
