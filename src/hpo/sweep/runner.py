"""Build and run the Ray Tune sweep: searcher, scheduler, resources, storage, failures."""

from __future__ import annotations

import os

# Ray Tune's console reporter and its per-trial CSV/JSON/TensorBoard loggers: we print our
# own progress line and record every result ourselves (TrialRecorder).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")

import datetime as _dt
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler
from ray.tune.search.optuna import OptunaSearch

from hpo.cluster import cluster_cpus, cluster_gpus, start_ray, stop_ray
from hpo.data.prepare import PreparedData, prepare_data
from hpo.data.quality import report_quality
from hpo.errors import ConfigError, HPOError, ResourceError
from hpo.space import SearchSpace, build_search_space, grid_size, grid_values
from hpo.sweep.optuna_bridge import FidelityAwareOptunaSearch
from hpo.sweep.recorder import TrialRecorder
from hpo.sweep.results import (
    ROWS_FILE,
    count_statuses,
    load_rows,
    select_best,
    write_best,
    write_trials,
)
from hpo.train.metrics import metric_names
from hpo.train.trial import run_trial

TUNE_DIR = "tune"


@dataclass
class SweepResult:
    run_dir: Path
    best: dict[str, Any] | None
    counts: dict[str, int]
    wall_s: float
    trials: pd.DataFrame
    study: optuna.Study | None = None
    prepared: PreparedData | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def reported_metrics(task: str) -> list[str]:
    return ["val_loss", "train_loss", *(f"val_{m}" for m in metric_names(task))]


def make_run_dir(cfg: DictConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = Path(cfg.output_dir).expanduser().resolve() / cfg.name / stamp
    run_dir, n = base, 1
    while run_dir.exists():
        run_dir = base.with_name(f"{stamp}_{n}")
        n += 1
    run_dir.mkdir(parents=True)
    return run_dir


def make_sampler(
    cfg: DictConfig, space: SearchSpace, concurrent: int
) -> optuna.samplers.BaseSampler:
    s = cfg.searcher
    seed = int(cfg.seed)
    liar = s.constant_liar
    constant_liar = concurrent > 1 if liar in ("auto", None) else bool(liar)
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
        return optuna.samplers.GridSampler(
            {k: grid_values(k, d) for k, d in space.items()}, seed=seed
        )
    if s.name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=s.n_startup_trials)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=s.n_startup_trials, warn_independent_sampling=False
        )
    raise ConfigError(f"config key `searcher.name`: unknown searcher {s.name!r}.")


def make_searcher(cfg: DictConfig, space: SearchSpace, concurrent: int) -> OptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(cfg, space, concurrent)
    cls = (
        FidelityAwareOptunaSearch
        if cfg.searcher.get("bridge", "fidelity") == "fidelity"
        else OptunaSearch
    )
    return cls(space=dict(space), metric=cfg.metric, mode=cfg.mode, sampler=sampler)


def make_scheduler(cfg: DictConfig):
    s = cfg.scheduler
    if s.name == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=s.max_t,
            grace_period=min(s.grace_period, s.max_t),
            reduction_factor=s.reduction_factor,
        )
    if s.name == "hyperband":
        return HyperBandScheduler(
            time_attr="training_iteration", max_t=s.max_t, reduction_factor=s.reduction_factor
        )
    return FIFOScheduler()


def check_before_ray(cfg: DictConfig, space: SearchSpace, task: str) -> int:
    """Checks that need the task; returns the number of trials to run."""
    names = reported_metrics(task)
    if cfg.metric not in names:
        raise ConfigError(
            f"config key `metric`: {cfg.metric!r} is not reported for {task}; use one of "
            f"{', '.join(names)}."
        )
    num_samples = int(cfg.budget.num_samples)
    if not space:
        raise ConfigError(
            "config key `search_space`: the search space is empty; add sweep expressions "
            "such as 'optim.lr=tag(log, interval(1e-4, 1e-2))'."
        )
    if cfg.searcher.name == "grid":
        num_samples = (
            min(num_samples, grid_size(space)) if cfg.budget.num_samples else grid_size(space)
        )
    return num_samples


def check_resources(cfg: DictConfig) -> int:
    """Fail at once on a request the cluster can never satisfy; return the concurrency."""
    cpus, gpus = cluster_cpus(), cluster_gpus()
    want_cpu = float(cfg.resources.cpus_per_trial)
    want_gpu = float(cfg.resources.gpus_per_trial)
    if want_gpu > 0 and gpus == 0:
        raise ResourceError(
            f"config key `resources.gpus_per_trial`: {want_gpu} GPUs per trial were asked for, "
            "but the Ray cluster has no GPU; set resources.gpus_per_trial=0 or add GPU nodes."
        )
    if want_gpu > gpus:
        raise ResourceError(
            f"config key `resources.gpus_per_trial`: {want_gpu} GPUs per trial, but the "
            f"cluster has {gpus:g}; lower it."
        )
    if want_cpu > cpus:
        raise ResourceError(
            f"config key `resources.cpus_per_trial`: {want_cpu:g} CPUs per trial, but the "
            f"cluster has {cpus:g}; lower it."
        )
    slots = math.floor(cpus / want_cpu)
    if want_gpu > 0:
        slots = min(slots, math.floor(gpus / want_gpu + 1e-9))
    requested = cfg.budget.max_concurrent_trials
    return max(1, min(slots, requested) if requested else slots)


def trial_dirname(trial) -> str:
    """Short trial folders (Ray's default name lists every hyperparameter)."""
    return f"trial_{trial.trial_id}"


def _plain_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def run_sweep(
    cfg: DictConfig,
    run_dir: Path | None = None,
    stream=sys.stdout,
) -> SweepResult:
    """Run the configured sweep end to end and write the run directory.

    Args:
        cfg: the validated config (hpo.config.compose_config).
        run_dir: where to write; a new ``output_dir/name/<time>`` by default.
        stream: where progress lines go (None: silent).
    """
    started_at = time.monotonic()
    space, _ = build_search_space(cfg.search_space)
    prepared = prepare_data(cfg)  # data errors surface before any Ray work
    num_samples = check_before_ray(cfg, space, prepared.task)
    run_dir = Path(run_dir) if run_dir else make_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if stream is not None:
        print(
            f"hpo: {prepared.task} on {cfg.data.name}: {len(prepared.train_idx)} rows for "
            f"{cfg.cv.folds}-fold CV, {len(prepared.test_idx)} held out for the test; "
            f"{num_samples} trials, searcher={cfg.searcher.name}, scheduler={cfg.scheduler.name}",
            file=stream,
            flush=True,
        )
    report_quality(prepared, run_dir, stream)  # data_quality.json; its warnings printed
    owns_ray = start_ray(cfg.cluster)
    try:
        concurrent = check_resources(cfg)
        recorder = TrialRecorder(run_dir / ROWS_FILE, cfg.metric, cfg.mode, num_samples, stream)
        searcher = make_searcher(cfg, space, concurrent)
        tuner = build_tuner(cfg, prepared, searcher, recorder, run_dir, num_samples, concurrent)
        tuner.fit()
    finally:
        if owns_ray:
            stop_ray()
    return finish_sweep(
        cfg,
        run_dir,
        space,
        started_at,
        searcher.study if hasattr(searcher, "study") else getattr(searcher, "_ot_study", None),
        prepared,
    )


def build_tuner(cfg, prepared, searcher, recorder, run_dir, num_samples, concurrent) -> tune.Tuner:
    trainable = tune.with_parameters(
        run_trial, trial_data=prepared.trial_data, base_cfg=_plain_config(cfg)
    )
    resources = {"cpu": float(cfg.resources.cpus_per_trial)}
    if cfg.resources.gpus_per_trial:
        resources["gpu"] = float(cfg.resources.gpus_per_trial)
    trainable = tune.with_resources(trainable, resources)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=cfg.metric,
            mode=cfg.mode,
            search_alg=searcher,
            scheduler=make_scheduler(cfg),
            num_samples=num_samples,
            max_concurrent_trials=concurrent,
            time_budget_s=cfg.budget.time_budget_s,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(run_dir),
            verbose=0,
            callbacks=[recorder],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=int(cfg.budget.max_retries)),
        ),
    )


def finish_sweep(cfg, run_dir, space, started_at, study, prepared) -> SweepResult:
    frame = load_rows(run_dir / ROWS_FILE)
    if not frame.empty:
        write_trials(frame, run_dir)
    counts = count_statuses(frame)
    best = None
    try:
        best = select_best(frame, cfg.metric, cfg.mode, list(space))
        write_best(best, run_dir)
    except HPOError:
        if counts.get("failed", 0) == 0:
            raise
    wall = time.monotonic() - started_at
    total = sum(counts.values())
    if total and counts.get("failed", 0) / total > float(cfg.budget.max_failure_rate):
        causes = frame.groupby("trial_id")["error"].last().dropna().value_counts().head(5)
        listing = "; ".join(f"{n}x {msg}" for msg, n in causes.items())
        raise HPOError(
            f"{counts['failed']} of {total} trials failed, more than budget.max_failure_rate="
            f"{cfg.budget.max_failure_rate}; causes: {listing}. Results so far are in {run_dir}."
        )
    return SweepResult(run_dir, best, counts, wall, frame, study, prepared)
