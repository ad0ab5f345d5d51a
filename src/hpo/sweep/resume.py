"""`hpo resume RUN_DIR`: finish a sweep whose driver was killed or interrupted.

``Tuner.restore`` brings back what Tune snapshotted in ``RUN_DIR/tune``: the trials
(finished ones are kept and not run again; unfinished ones continue from their last
checkpoint), the searcher with its whole history (for the fidelity bridge that includes
the best value seen of every running trial), and the callbacks' state, which carries
ASHA's rungs (hpo.sweep.asha). trials.jsonl goes on from its last row.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from ray import tune

from hpo.cluster import start_ray, stop_ray
from hpo.config.compose import load_run_config, validate_config
from hpo.data.prepare import prepare_data
from hpo.errors import ConfigError, HPOError
from hpo.space import build_search_space
from hpo.sweep.recorder import STATUS_RUNNING
from hpo.sweep.results import ROWS_FILE, load_rows
from hpo.sweep.runner import (
    SweepResult,
    check_before_ray,
    check_resources,
    finish_run,
    fit_tuner,
    make_trainable,
    sweep_callbacks,
)
from hpo.sweep.storage import RunLocation

# What may change between the interrupted run and its resume: where it runs, not what.
RESUMABLE_KEYS = ("cluster.",)


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``key=value`` overrides of the ``cluster`` keys onto a saved run config."""
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or not key.startswith(RESUMABLE_KEYS):
            raise ConfigError(
                f"override {override!r}: `hpo resume` takes only cluster.* overrides "
                "(e.g. cluster.address=auto); the sweep itself is fixed by the run "
                "directory's config.yaml."
            )
    if not overrides:
        return cfg
    merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return validate_config(OmegaConf.to_container(merged))


def restored_parts(tuner: tune.Tuner):
    """The TuneConfig and RunConfig that ``Tuner.restore`` unpickled from tuner.pkl.

    Ray 2.60 has no public accessor; the callbacks must be replaced (the pickled ones
    know neither this process's output stream nor a moved run directory), and the
    restored scheduler and searcher are read after the fit.
    """
    internal = getattr(tuner, "_local_tuner", None)
    if internal is None or not hasattr(internal, "_tune_config"):
        raise HPOError(
            "this Ray version's Tuner hides its restored config, which `hpo resume` needs; "
            "install ray>=2.50,<3 as pyproject.toml asks."
        )
    return internal._tune_config, internal.get_run_config()


def resume_sweep(
    run_dir: str | Path, overrides: Sequence[str] = (), stream=sys.stdout
) -> SweepResult:
    """Finish the sweep in ``run_dir`` (a path or URI) and write its results.

    Args:
        run_dir: the run directory an interrupted ``hpo sweep`` printed.
        overrides: ``cluster.*`` overrides (e.g. to resume on another cluster).
        stream: where progress lines go (None: silent).

    Raises:
        SweepInterrupted: Ctrl-C again; resume once more.
    """
    started_at = time.monotonic()
    location = RunLocation.open(run_dir)
    cfg = apply_overrides(load_run_config(location.local), overrides)
    if not location.has_tuner_state():
        raise HPOError(
            f"{location.display} has no Ray Tune state (tune/tuner.pkl): the sweep stopped "
            "before it started; run `hpo sweep` again."
        )
    space, _ = build_search_space(cfg.search_space)
    prepared = prepare_data(cfg)  # the same split and folds: they depend on the seed only
    num_samples = check_before_ray(cfg, space, prepared.task)
    before = load_rows(location.local / ROWS_FILE)
    if stream is not None:
        ended = (
            0
            if before.empty
            else int((before.groupby("trial_id")["status"].last() != STATUS_RUNNING).sum())
        )
        print(
            f"hpo: resuming {location.display}: {ended} of {num_samples} trials finished",
            file=stream,
            flush=True,
        )
    owns_ray = start_ray(cfg.cluster)
    try:
        check_resources(cfg)
        try:
            tuner = tune.Tuner.restore(
                location.tune_path,
                trainable=make_trainable(cfg, prepared),
                resume_unfinished=True,
                resume_errored=False,  # a failed trial stays failed (it is recorded so)
                restart_errored=False,
            )
        except (ValueError, FileNotFoundError) as exc:
            raise HPOError(f"cannot resume {location.display}: {exc}") from exc
        tune_config, run_config = restored_parts(tuner)
        scheduler = tune_config.scheduler
        run_config.callbacks = sweep_callbacks(cfg, location, num_samples, scheduler, stream)
        fit_tuner(tuner, cfg, location, num_samples)
    finally:
        if owns_ray:
            stop_ray()
        location.upload()
    searcher = tune_config.search_alg
    study = getattr(searcher, "study", None) or getattr(searcher, "_ot_study", None)
    return finish_run(cfg, location, space, started_at, study, prepared, scheduler)
