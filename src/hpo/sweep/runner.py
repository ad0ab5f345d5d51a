"""Build and run the Ray Tune sweep: searcher, scheduler, resources, storage, failures."""

from __future__ import annotations

import os

# Ray Tune's console reporter and its per-trial CSV/JSON/TensorBoard loggers: we show our
# own progress (ProgressReporter) and record every result ourselves (TrialRecorder).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")

import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from ray import tune

from hpo.cluster import node_resources, start_ray, stop_ray
from hpo.config.objectives import objectives
from hpo.data.prepare import PreparedData, prepare_data
from hpo.data.quality import report_quality
from hpo.errors import ConfigError, HPOError
from hpo.export.options import check_export_options
from hpo.paths import os_errors, raise_for_os_error
from hpo.rundir import CONFIG as RUN_CONFIG
from hpo.space import SearchSpace, build_search_space, grid_size
from hpo.sweep.asha import SchedulerState, SuccessiveHalving
from hpo.sweep.factories import make_sampler, make_scheduler, make_searcher, pbt_mutations
from hpo.sweep.interrupts import tune_handlers_undone
from hpo.sweep.lock import release_run_dir
from hpo.sweep.mlflow_tracking import TRACKING_FILES, MLflowTracker, check_tracking
from hpo.sweep.optuna_bridge import JOURNAL_FILE
from hpo.sweep.progress import ProgressReporter
from hpo.sweep.prune import prune_checkpoints
from hpo.sweep.recorder import TrialRecorder
from hpo.sweep.resources import plan_concurrency
from hpo.sweep.results import (
    ROWS_FILE,
    choose_best,
    count_statuses,
    load_rows,
    write_best,
    write_trials,
)
from hpo.sweep.storage import TUNE_DIR, RunLocation
from hpo.sweep.sweep import FINISHED_STATES, Sweep, trial_dirname
from hpo.sweep.tensorboard import TensorBoardWriter
from hpo.sweep.tune_log import TUNE_LOG, tune_log_to
from hpo.train.cost import COST_METRICS
from hpo.train.metrics import metric_names
from hpo.train.trial import TRIAL_FUNCTIONS, engine_name

__all__ = [
    "TUNE_DIR",
    "SweepInterrupted",
    "SweepResult",
    "make_sampler",
    "make_scheduler",
    "make_searcher",
    "run_sweep",
    "trial_dirname",
]


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
    return ["val_loss", "train_loss", *(f"val_{m}" for m in metric_names(task)), *COST_METRICS]


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


def prepare_sweep_data(cfg: DictConfig, space: SearchSpace):
    """The data every trial needs, prepared on the driver before any Ray work, for the
    config's engine: ``(prepared, task, metric names the trials report)``. Tables: the
    cleaned, split and preprocessed folds (PreparedData); a DataModule: the fold plan, its
    logged metrics found by a one-batch preflight (FoldPlan)."""
    if engine_name(cfg) == "lightning":
        from hpo.train.lightning_plan import plan_lightning  # lightning: only on this path

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
    check_tracking(cfg)
    for metric, _ in objectives(cfg):
        if metric not in names:
            raise ConfigError(
                f"config key `metric`: {metric!r} is not reported for {task}; use one of "
                f"{', '.join(names)}."
            )
    num_samples = int(cfg.budget.num_samples)
    if not space:
        raise ConfigError(
            "config key `search_space`: the search space is empty; add sweep expressions "
            "such as 'optim.lr=tag(log, interval(1e-4, 1e-2))'."
        )
    if cfg.scheduler.name == "pbt":
        pbt_mutations(space)  # a space with nothing PBT can explore fails here
        if cfg.budget.max_concurrent_trials == 1:
            raise ConfigError(
                "config key `budget.max_concurrent_trials`: scheduler=pbt needs trials "
                "running side by side to exploit; set it to 2 or more (or null)."
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
        with os_errors(run_dir / RUN_CONFIG):  # a full disk shows here, before Ray
            OmegaConf.save(cfg, run_dir / RUN_CONFIG, resolve=True)
        location.upload()
        if stream is not None:
            print(
                f"{header_line(cfg, prepared, task)}; {num_samples} trials, searcher="
                f"{cfg.searcher.name}, scheduler={cfg.scheduler.name}"
                f"\nhpo: run directory {location.display}",
                file=stream,
                flush=True,
            )
        with os_errors(run_dir):  # data_quality.json (a table's, or a DataModule hook's)
            report_quality(prepared, run_dir, stream)
        owns_ray = start_ray(cfg.cluster)
        sweep = None
        try:
            concurrent = check_resources(cfg)
            sweep = build_sweep(
                cfg, prepared, space, location, num_samples, concurrent, stream, names
            )
            fit_sweep(sweep, cfg, location, num_samples)
        finally:
            if owns_ray:
                stop_ray()
            upload_progress(location)  # (all of it after finish_run) at a URI
        study = getattr(sweep.searcher, "study", None)
        return finish_run(cfg, location, space, started_at, study, prepared, sweep.scheduler)
    except BaseException:  # Ctrl-C included: `hpo resume` claims it again
        release_run_dir(location.local)
        raise


def header_line(cfg: DictConfig, prepared, task: str) -> str:
    if isinstance(prepared, PreparedData):
        return (
            f"hpo: {task} on {cfg.data.name}: {len(prepared.train_idx)} rows for "
            f"{cfg.cv.folds}-fold CV, {len(prepared.test_idx)} held out for the test"
        )
    logged = [m for m in prepared.logged if m not in COST_METRICS]
    return (
        f"hpo: {task} on {cfg.data._target_} (a real lightning.Trainer per fold): "
        f"{len(prepared.rest_rows)} rows for {cfg.cv.folds}-fold CV ({prepared.strategy}); "
        f"{'; '.join(prepared.notes)}; logged metrics: {', '.join(logged)}; added by hpo: "
        f"{', '.join(COST_METRICS)}"
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


def upload_progress(location: RunLocation) -> None:
    """At a URI: the rows and the study's journal so far (nothing to do for a path).

    A driver killed mid-trial at a URI leaves the journal as of the last trial end: the
    trials that Tune snapshotted after it are run again but not in the study."""
    location.upload(ROWS_FILE)
    location.upload(JOURNAL_FILE)
    for name in TRACKING_FILES:  # tracking=mlflow's store in the run directory, if any
        location.upload(name)


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
        None,  # the ProgressReporter prints
        on_trial_end=(lambda: upload_progress(location)) if location.uri else None,
        metric_names=names,
    )
    callbacks = [recorder, TensorBoardWriter(location.local, cfg.metric, cfg.mode, names)]
    if cfg.tracking.name == "mlflow":
        callbacks.append(MLflowTracker(location, cfg, names))
    if hasattr(scheduler, "state_dict"):
        callbacks.append(SchedulerState(scheduler))
    # last: stateless, so the stateful callbacks keep their positions
    progress = ProgressReporter(
        location.local,
        cfg.metric,
        cfg.mode,
        num_samples,
        stream,
        scheduler,
        time_budget_s=cfg.budget.time_budget_s,
    )
    return [*callbacks, progress]


def build_sweep(
    cfg, prepared, space, location, num_samples, concurrent, stream, names, resume=False
) -> Sweep:
    """The run's Sweep: the config's searcher (its study in the run directory's journal)
    and scheduler, the trial function and the driver's callbacks. ``hpo resume`` builds
    the same one (``resume``: trials.jsonl is appended to)."""
    sweep = Sweep.from_config(
        cfg,
        space,
        make_trainable(cfg, prepared),
        location.tune_storage,
        location.local / JOURNAL_FILE,
        num_samples,
        concurrent,
    )
    sweep.callbacks = sweep_callbacks(cfg, location, num_samples, sweep.scheduler, stream, names)
    return sweep


def fit_sweep(sweep: Sweep, cfg: DictConfig, location: RunLocation, num_samples: int, resume=False):
    """``sweep.run()``, raising SweepInterrupted when Ctrl-C cut the sweep short.

    On the first Ctrl-C Tune stops the trials, saves the experiment state and returns
    normally, so an interrupt shows as trials left unfinished.
    """
    try:
        with tune_handlers_undone(), tune_log_to(location.local):  # (their docstrings)
            ours = signal.getsignal(signal.SIGINT)
            try:
                trials = sweep.run(resume=resume)
            finally:  # the live table stops however the sweep ends, the event files end
                for callback in sweep.callbacks:  # (the TensorBoard files: written out)
                    if isinstance(callback, (ProgressReporter, TensorBoardWriter)):
                        callback.close()
            # Tune puts our handler back only when a Ctrl-C reached its own
            ctrl_c = signal.getsignal(signal.SIGINT) is ours
    except KeyboardInterrupt:  # a second Ctrl-C: Tune's last snapshot may be older
        raise SweepInterrupted(location.display) from None
    except Exception as exc:  # a full disk on the driver: one line, not Tune's traceback
        again = f"`hpo resume {shlex.quote(location.display)}`"
        raise_for_os_error(exc, "the sweep stopped", f"Then finish it with {again}.")
        raise
    unfinished = sum(t.status not in FINISHED_STATES for t in trials)
    if unfinished or (cfg.budget.time_budget_s is None and len(trials) < num_samples):
        if resume and not ctrl_c:  # not an interrupt: resuming again would loop
            raise HPOError(
                f"cannot resume {location.display}: Ray Tune's restore ended with "
                f"{len(trials) - unfinished} of {num_samples} trials and no Ctrl-C; its saved "
                f"state (tune/) does not match the run; see {location.local / TUNE_LOG}."
            )
        raise SweepInterrupted(location.display)
    return trials


def finish_run(cfg, location, space, started_at, study, prepared, scheduler) -> SweepResult:
    """finish_sweep, then the URI upload and what the caller may want to inspect."""
    try:
        result = finish_sweep(cfg, location.local, space, started_at, study, prepared)
        # every trial has ended: resume restores none, the export replays from the seed
        result.extra["pruned"] = prune_checkpoints(location)
    finally:
        location.upload()
    result.extra["storage"] = location.display
    if isinstance(scheduler, SuccessiveHalving):
        result.extra["asha_rungs"] = scheduler.rung_records()
        result.extra["brackets"] = [
            scheduler.rung_records(b) for b in range(len(scheduler.brackets))
        ]
    if hasattr(scheduler, "state_dict"):
        result.extra["scheduler_state"] = scheduler.state_dict()
    return result


def finish_sweep(cfg, run_dir, space, started_at, study, prepared) -> SweepResult:
    frame = load_rows(run_dir / ROWS_FILE)
    if not frame.empty:
        write_trials(frame, run_dir)
    counts = count_statuses(frame)
    best = None
    try:
        best = choose_best(frame, cfg, list(space))
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
