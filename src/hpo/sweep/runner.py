"""Build and run the Ray Tune sweep: searcher, scheduler, resources, storage, failures."""

from __future__ import annotations

import os

# Ray Tune's console reporter and its per-trial CSV/JSON/TensorBoard loggers: we print our
# own progress line and record every result ourselves (TrialRecorder).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")

import shlex
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
from ray.tune.schedulers import FIFOScheduler, HyperBandScheduler
from ray.tune.search.optuna import OptunaSearch

from hpo.cluster import node_resources, start_ray, stop_ray
from hpo.data.prepare import PreparedData, prepare_data
from hpo.data.quality import report_quality
from hpo.errors import ConfigError, HPOError
from hpo.paths import os_errors, raise_for_os_error
from hpo.export.options import check_export_options
from hpo.space import SearchSpace, build_search_space, grid_size, grid_values
from hpo.sweep.asha import ResumableASHA, SchedulerState
from hpo.sweep.interrupts import tune_handlers_undone
from hpo.sweep.lock import release_run_dir
from hpo.sweep.optuna_bridge import FidelityAwareOptunaSearch, TuneDrivenGridSampler
from hpo.sweep.prune import prune_checkpoints
from hpo.sweep.recorder import TrialRecorder
from hpo.sweep.resources import plan_concurrency
from hpo.sweep.results import (
    ROWS_FILE,
    count_statuses,
    load_rows,
    select_best,
    write_best,
    write_trials,
)
from hpo.sweep.storage import TUNE_DIR, RunLocation
from hpo.sweep.tensorboard import TensorBoardWriter
from hpo.sweep.tune_log import tune_log_to
from hpo.train.lightning_plan import plan_lightning
from hpo.train.metrics import metric_names
from hpo.train.trial import TRIAL_FUNCTIONS, engine_name

__all__ = ["TUNE_DIR", "SweepInterrupted", "SweepResult", "run_sweep"]


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


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; Tune saved its state and `hpo resume` finishes it."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        super().__init__(
            f"the sweep stopped before its last trial; finish it with: "
            f"hpo resume {shlex.quote(run_dir)}"
        )


def make_run_dir(cfg: DictConfig) -> Path:
    """A new local run directory (``run_dir``, else ``output_dir/name/<time>``)."""
    return RunLocation.create(cfg).local


def make_sampler(
    cfg: DictConfig, space: SearchSpace, concurrent: int | None
) -> optuna.samplers.BaseSampler:
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
            seed=seed, n_startup_trials=s.n_startup_trials, warn_independent_sampling=False
        )
    raise ConfigError(f"config key `searcher.name`: unknown searcher {s.name!r}.")


def make_searcher(cfg: DictConfig, space: SearchSpace, concurrent: int | None) -> OptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(cfg, space, concurrent)
    cls = (
        FidelityAwareOptunaSearch
        if cfg.searcher.get("bridge", "fidelity") == "fidelity"
        else OptunaSearch
    )
    return cls(space=dict(space), metric=cfg.metric, mode=cfg.mode, sampler=sampler)


def make_scheduler(cfg: DictConfig):
    """ASHA or HyperBand over epochs (the trial's own count, which survives a resume
    from any checkpoint), or FIFO."""
    s = cfg.scheduler
    if s.name == "asha":
        return ResumableASHA(
            time_attr="epoch",
            max_t=s.max_t,
            grace_period=min(s.grace_period, s.max_t),
            reduction_factor=s.reduction_factor,
        )
    if s.name == "hyperband":
        return HyperBandScheduler(
            time_attr="epoch", max_t=s.max_t, reduction_factor=s.reduction_factor
        )
    return FIFOScheduler()


def prepare_sweep_data(cfg: DictConfig, space: SearchSpace):
    """The data every trial needs, prepared on the driver before any Ray work, for the
    config's engine: ``(prepared, task, metric names the trials report)``. Tables: the
    cleaned, split and preprocessed folds (PreparedData); a DataModule: the fold plan, its
    logged metrics found by a one-batch preflight (FoldPlan)."""
    if engine_name(cfg) == "lightning":
        plan = plan_lightning(cfg, space)
        return plan, plan.task, plan.logged
    prepared = prepare_data(cfg)
    return prepared, prepared.task, reported_metrics(prepared.task)


def check_before_ray(
    cfg: DictConfig, space: SearchSpace, task: str, names: list[str] | None = None
) -> int:
    """Checks that need the task; returns the number of trials to run."""
    names = names if names is not None else reported_metrics(task)
    check_export_options(cfg)  # the export runs after every trial: check its keys now
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


def check_resources(cfg: DictConfig) -> int | None:
    """Fail at once on a request no node can ever hold; return the concurrency cap."""
    return plan_concurrency(
        node_resources(),
        float(cfg.resources.cpus_per_trial),
        float(cfg.resources.gpus_per_trial),
        cfg.budget.max_concurrent_trials,
        [dict(node) for node in cfg.cluster.get("node_types") or []],
    )


def trial_dirname(trial) -> str:
    """Short trial folders (Ray's default name lists every hyperparameter)."""
    return f"trial_{trial.trial_id}"


def _plain_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def run_sweep(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    stream=sys.stdout,
) -> SweepResult:
    """Run the configured sweep end to end and write the run directory.

    Args:
        cfg: the validated config (hpo.config.compose_config).
        run_dir: where to write; the ``run_dir`` key, else a new ``output_dir/name/<time>``.
            A URI (s3://...) works too: see hpo.sweep.storage.
        stream: where progress lines go (None: silent).

    Returns:
        The results. The run directory stays claimed (hpo.sweep.lock) so that the export
        writes ``best/`` under the same claim: ``release_run_dir(result.run_dir)`` or the
        end of the process drops it; any exception drops it at once.

    Raises:
        SweepInterrupted: Ctrl-C; ``hpo resume`` (hpo.sweep.resume) finishes the sweep.
        HPOError: another sweep holds ``run_dir``.
    """
    started_at = time.monotonic()
    space, _ = build_search_space(cfg.search_space)
    prepared, task, names = prepare_sweep_data(cfg, space)  # data errors: before any Ray work
    num_samples = check_before_ray(cfg, space, task, names)
    location = RunLocation.create(cfg, run_dir)  # claims it: hpo.sweep.lock
    try:
        run_dir = location.local
        with os_errors(run_dir / "config.yaml"):  # a full disk shows here, before Ray
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        location.upload()
        if stream is not None:
            print(
                f"{header_line(cfg, prepared, task)}; {num_samples} trials, searcher="
                f"{cfg.searcher.name}, scheduler={cfg.scheduler.name}"
                f"\nhpo: run directory {location.display}",
                file=stream,
                flush=True,
            )
        if isinstance(prepared, PreparedData):
            with os_errors(run_dir):
                report_quality(prepared, run_dir, stream)  # data_quality.json; its warnings
        owns_ray = start_ray(cfg.cluster)
        try:
            concurrent = check_resources(cfg)
            searcher = make_searcher(cfg, space, concurrent)
            scheduler = make_scheduler(cfg)
            callbacks = sweep_callbacks(cfg, location, num_samples, scheduler, stream, names)
            tuner = build_tuner(
                cfg, prepared, searcher, scheduler, callbacks, location, num_samples, concurrent
            )
            fit_tuner(tuner, cfg, location, num_samples)
        finally:
            if owns_ray:
                stop_ray()
            location.upload(ROWS_FILE)  # (all of it after finish_run) at a URI
        study = getattr(searcher, "study", None) or getattr(searcher, "_ot_study", None)
        return finish_run(cfg, location, space, started_at, study, prepared, scheduler)
    except BaseException:  # Ctrl-C included: `hpo resume` claims it again
        release_run_dir(location.local)
        raise


def header_line(cfg: DictConfig, prepared, task: str) -> str:
    if isinstance(prepared, PreparedData):
        return (
            f"hpo: {task} on {cfg.data.name}: {len(prepared.train_idx)} rows for "
            f"{cfg.cv.folds}-fold CV, {len(prepared.test_idx)} held out for the test"
        )
    return (
        f"hpo: {task} on {cfg.data._target_} (a real lightning.Trainer per fold): "
        f"{len(prepared.rest_rows)} rows for {cfg.cv.folds}-fold CV ({prepared.strategy}); "
        f"{'; '.join(prepared.notes)}; logged metrics: {', '.join(prepared.logged)}"
    )


def make_trainable(cfg: DictConfig, prepared):
    """The config's trial function with its data and the config bound (Ray's object store
    holds them once), and the per-trial resources."""
    if isinstance(prepared, PreparedData):
        bound = {"trial_data": prepared.trial_data}
    else:
        bound = {"plan": prepared}
    trainable = tune.with_parameters(
        TRIAL_FUNCTIONS[engine_name(cfg)], **bound, base_cfg=_plain_config(cfg)
    )
    resources = {"cpu": float(cfg.resources.cpus_per_trial)}
    if cfg.resources.gpus_per_trial:
        resources["gpu"] = float(cfg.resources.gpus_per_trial)
    return tune.with_resources(trainable, resources)


def sweep_callbacks(
    cfg, location: RunLocation, num_samples: int, scheduler, stream, names=()
) -> list:
    """The driver's Tune callbacks. A resumed sweep builds the same list (Tune restores
    callback state by position). ``names``: the metrics the trials report."""
    recorder = TrialRecorder(
        location.local / ROWS_FILE,
        cfg.metric,
        cfg.mode,
        num_samples,
        stream,
        on_trial_end=(lambda: location.upload(ROWS_FILE)) if location.uri else None,
        metric_names=names,
    )
    callbacks = [recorder, TensorBoardWriter(location.local, cfg.metric, cfg.mode, names)]
    if isinstance(scheduler, ResumableASHA):
        callbacks.append(SchedulerState(scheduler))
    return callbacks


def build_tuner(
    cfg, prepared, searcher, scheduler, callbacks, location, num_samples, concurrent
) -> tune.Tuner:
    return tune.Tuner(
        make_trainable(cfg, prepared),
        tune_config=tune.TuneConfig(
            metric=cfg.metric,
            mode=cfg.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=concurrent,
            time_budget_s=cfg.budget.time_budget_s,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=location.tune_storage,
            verbose=0,
            callbacks=callbacks,
            # num_to_keep=1 also makes Tune snapshot the experiment after every trial
            # checkpoint, so a killed driver loses at most the epoch in flight (the
            # snapshot can lag the deletion of the previous checkpoint by a moment:
            # hpo.sweep.resume.repair_snapshot_checkpoints covers that).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=int(cfg.budget.max_retries)),
        ),
    )


def fit_tuner(tuner: tune.Tuner, cfg: DictConfig, location: RunLocation, num_samples: int):
    """``tuner.fit()``, raising SweepInterrupted when Ctrl-C cut the sweep short.

    On the first Ctrl-C Tune stops the trials, saves the experiment state and returns
    normally, so an interrupt shows as trials left unfinished.
    """
    try:
        with tune_handlers_undone(), tune_log_to(location.local):  # (their docstrings)
            grid = tuner.fit()
    except KeyboardInterrupt:  # a second Ctrl-C: Tune's last snapshot may be older
        raise SweepInterrupted(location.display) from None
    except Exception as exc:  # a full disk on the driver: one line, not Tune's traceback
        resume = f"`hpo resume {shlex.quote(location.display)}`"
        raise_for_os_error(exc, "the sweep stopped", f"Then finish it with {resume}.")
        raise
    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    if unfinished or (cfg.budget.time_budget_s is None and len(grid) < num_samples):
        raise SweepInterrupted(location.display)
    return grid


def finish_run(cfg, location, space, started_at, study, prepared, scheduler) -> SweepResult:
    """finish_sweep, then the URI upload and what the caller may want to inspect."""
    try:
        result = finish_sweep(cfg, location.local, space, started_at, study, prepared)
        # every trial has ended: resume restores none, the export replays from the seed
        result.extra["pruned"] = prune_checkpoints(location)
    finally:
        location.upload()
    result.extra["storage"] = location.display
    if isinstance(scheduler, ResumableASHA):
        result.extra["asha_rungs"] = scheduler.rung_records()
    return result


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
