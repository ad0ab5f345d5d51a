"""MLflow tracking of a sweep (``tracking=mlflow``), logged from the driver as results arrive.

One parent run per sweep (the sweep's settings and search space as params) and one nested
child run per trial (``mlflow.parentRunId``, tagged ``trial_id``): its hyperparameters,
every fold-mean metric and each fold's value per epoch (``step`` = epoch; ``NAME`` and
``NAME/fold_K``) and its end as the run status: FINISHED (ended by itself), KILLED (stopped
by the scheduler, or cut short by an interrupt) or FAILED. After the export the parent
gets the best trial (``best_METRIC``, tag ``best_trial_id``), the test metrics
(``test_NAME``) and the exported ``best/`` folder (model, preprocessing, config, report)
as artifacts.

The store is ``tracking.uri``, by default ``sqlite:///RUN_DIR/mlflow.db`` with artifacts in
``RUN_DIR/mlartifacts`` (MLflow 3 refuses a bare ``file://`` store unless
``MLFLOW_ALLOW_FILE_STORE=true``): ``mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db``
shows it. The run ids are kept in ``RUN_DIR/mlflow_run.json``, so ``hpo resume`` goes on
with the same parent run and the same child run per trial.

Only MLflow's public ``MlflowClient`` is used; mlflow is imported when tracking=mlflow only.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from ray.tune import Callback

from hpo.errors import ConfigError
from hpo.rundir import MLFLOW_ARTIFACTS, MLFLOW_STATE, MLFLOW_STORE
from hpo.sweep.results import BEST_FILE
from hpo.train.trial import FINISHED_KEY

TRACKERS = ("none", "mlflow")
STATE_FILE = MLFLOW_STATE  # tracking URI, experiment, parent run id, trial -> child run id
STORE_FILE = MLFLOW_STORE
ARTIFACTS_DIR = MLFLOW_ARTIFACTS
TRACKING_FILES = (STORE_FILE, STATE_FILE)  # what a run directory at a URI uploads as it goes
PARENT_TAG = "mlflow.parentRunId"  # MLflow's system tag for nested runs
INSTALL = "pip install 'hpo[tracking]'"
NOT_METRICS = ("rows", "macro_classes")  # counts in the report's test section


def tracking_uri(uri: str | None, run_dir: str | Path) -> str:
    """``uri`` (``tracking.uri``), else the SQLite store in the (local) run directory."""
    return uri or f"sqlite:///{Path(run_dir).resolve().as_posix()}/{STORE_FILE}"


def check_tracking(cfg: DictConfig) -> None:
    """Before any Ray work: the tracker is known, installed, and its URI names a store
    MLflow can open (no server is contacted; a SQLite file is created)."""
    name = cfg.tracking.name
    if name not in TRACKERS:
        raise ConfigError(
            f"config key `tracking.name`: must be one of {', '.join(TRACKERS)}, got {name!r} "
            "(pick one with tracking=NAME)."
        )
    if name == "none":
        return
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise ConfigError(
            f"config key `tracking`: tracking=mlflow needs the mlflow package ({exc}); install "
            f"it with `{INSTALL}`, or use tracking=none."
        ) from None
    if cfg.tracking.uri and cfg.tracking.uri.startswith(("http://", "https://")):
        _check_server(cfg.tracking.uri)
    if cfg.tracking.uri:
        try:
            MlflowClient(cfg.tracking.uri)  # resolves the store from the URI's scheme
        except Exception as exc:  # MlflowException, or the store's own error
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"config key `tracking.uri`: MLflow cannot use {cfg.tracking.uri!r}: {first} "
                "Give a tracking URI such as http://HOST:5000 or sqlite:///PATH.db, or null "
                "for a store in the run directory."
            ) from None


def _check_server(uri: str) -> None:
    """A tracking server must answer now (MLflow's own client retries for minutes)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10).close()
    except urllib.error.HTTPError:
        pass  # it answers (behind a proxy or with auth, /health may be refused)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"config key `tracking.uri`: no MLflow server answers at {uri} ({reason}); start "
            "one (`mlflow server --host 127.0.0.1 --port 5000`) or fix the URI, or leave "
            "tracking.uri null for a store in the run directory."
        ) from None


def sweep_params(cfg: DictConfig) -> dict[str, str]:
    """The parent run's params: what the sweep was, and its search space as written."""
    params = {
        "data": cfg.data.get("name") or cfg.data.get("_target_"),
        "model": cfg.model.get("name") or cfg.model.get("_target_"),
        "metric": cfg.metric,
        "mode": cfg.mode,
        "searcher": cfg.searcher.name,
        "scheduler": cfg.scheduler.name,
        "num_samples": cfg.budget.num_samples,
        "cv.folds": cfg.cv.folds,
        "trainer.max_epochs": cfg.trainer.max_epochs,
        "seed": cfg.seed,
    }
    params.update({f"space.{k}": v for k, v in cfg.search_space.items()})
    return {k: str(v) for k, v in params.items()}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _error_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def tolerant(hook):
    """A tracker that fails (a tracking server gone, a full disk) must not end the sweep:
    the first error is printed once, and logging stops (trials.parquet keeps every result)."""

    @functools.wraps(hook)
    def run(self, *args, **kwargs):
        if self.failed:
            return None
        try:
            return hook(self, *args, **kwargs)
        except Exception as exc:
            self.failed = True
            print(
                f"hpo: MLflow logging stopped ({_error_line(exc)}); the sweep goes on, "
                "trials.parquet records every result.",
                file=sys.stderr,
                flush=True,
            )
            return None

    return run


def _read_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    path = run_dir / STATE_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(partial, path)  # a driver killed mid-write leaves the old ids


class MLflowTracker(Callback):
    """A Tune callback on the driver: the parent run and a child run per trial.

    Args:
        location: the run directory (hpo.sweep.storage.RunLocation); its local
            ``mlflow_run.json`` keeps the run ids. At a URI the default store is uploaded
            with the driver's files and the artifacts go to ``URI/mlartifacts``.
        cfg: the sweep's config (``tracking.*``, ``name``, ``metric``, the search space).
        metric_names: the fold-mean metrics the trials report.
    """

    def __init__(self, location, cfg: DictConfig, metric_names) -> None:
        self.run_dir = Path(location.local)
        self.display = location.display
        self.given_uri = cfg.tracking.uri or None
        remote = location.uri.rstrip("/") if location.uri else None
        self.artifacts = f"{remote}/{ARTIFACTS_DIR}" if remote else None
        self.experiment = cfg.tracking.experiment or cfg.name
        self.params = sweep_params(cfg)
        self.names = list(metric_names)
        self._client = None
        self._state: dict[str, Any] = {}
        self._finished: dict[str, bool] = {}  # trial id -> its last result ended it
        self.failed = False

    def __getstate__(self) -> dict:  # Tune pickles callbacks; the client stays behind
        return {**self.__dict__, "_client": None}

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri(self.given_uri, self.run_dir))
            self._state = self._open_parent()
        return self._client

    def _open_parent(self) -> dict[str, Any]:
        """The run directory's parent run (resume), else a new one."""
        state = _read_state(self.run_dir)
        if state and state.get("tracking_uri") == self.given_uri:
            self._client.update_run(state["parent_run_id"], status="RUNNING")
            return state
        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = None  # a tracking server's own artifact store
            if not self.given_uri:
                location = self.artifacts or (self.run_dir / ARTIFACTS_DIR).resolve().as_uri()
            experiment_id = self._client.create_experiment(
                self.experiment, artifact_location=location
            )
        parent = self._client.create_run(
            experiment_id,
            run_name=self.display.rstrip("/").rsplit("/", 1)[-1],
            tags={"hpo.run_dir": self.display},
        )
        self._log(parent.info.run_id, params=self.params)
        state = {
            "tracking_uri": self.given_uri,  # null: the store in the run directory
            "experiment_id": experiment_id,
            "parent_run_id": parent.info.run_id,
            "trials": {},
        }
        _write_state(self.run_dir, state)
        return state

    def _log(self, run_id: str, metrics: dict[str, float] | None = None, step: int = 0,
             params: dict[str, Any] | None = None) -> None:  # fmt: skip
        _log_batch(self.client, run_id, metrics or {}, step, params or {})

    @tolerant
    def setup(self, **info) -> None:
        self.client  # the parent run exists before the first trial starts  # noqa: B018

    def _child(self, trial) -> str:
        """The trial's child run: created (with its hyperparameters) on first sight."""
        run_id = self._state["trials"].get(trial.trial_id)
        if run_id is None:
            run = self.client.create_run(
                self._state["experiment_id"],
                run_name=f"trial_{trial.trial_id}",
                tags={PARENT_TAG: self._state["parent_run_id"], "trial_id": trial.trial_id},
            )
            run_id = run.info.run_id
            self._log(run_id, params=dict(trial.config))
            self._state["trials"][trial.trial_id] = run_id
            _write_state(self.run_dir, self._state)
        return run_id

    @tolerant
    def on_trial_start(self, iteration, trials, trial, **info):
        run_id = self._child(trial)
        self.client.update_run(run_id, status="RUNNING")  # (again, for a resumed trial)

    @tolerant
    def on_trial_result(self, iteration, trials, trial, result, **info):
        metrics = {}
        for name in self.names:
            if (value := _number(result.get(name))) is not None:
                metrics[name] = value
            for fold, fold_value in enumerate(result.get(f"fold_{name}") or []):
                if (fold_value := _number(fold_value)) is not None:
                    metrics[f"{name}/fold_{fold}"] = fold_value
        self._finished[trial.trial_id] = bool(result.get(FINISHED_KEY))
        self._log(self._child(trial), metrics, step=int(result.get("epoch", 0)))

    @tolerant
    def on_trial_complete(self, iteration, trials, trial, **info):
        finished = self._finished.get(trial.trial_id, False)
        self._end(
            trial, "FINISHED" if finished else "KILLED", "completed" if finished else "stopped"
        )

    @tolerant
    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, "FAILED", "failed")

    def _end(self, trial, status: str, hpo_status: str) -> None:
        run_id = self._child(trial)
        self.client.set_tag(run_id, "hpo.status", hpo_status)  # as trials.parquet says it
        self.client.set_terminated(run_id, status)

    @tolerant
    def on_experiment_end(self, trials, **info):
        """The parent ends FINISHED, or KILLED when an interrupt left trials unfinished
        (as do their child runs; ``hpo resume`` sets them running again)."""
        client = self.client  # (opens the state too)
        unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
        for trial in unfinished:
            if trial.trial_id in self._state["trials"]:
                client.set_terminated(self._state["trials"][trial.trial_id], "KILLED")
        client.set_terminated(self._state["parent_run_id"], "KILLED" if unfinished else "FINISHED")


def log_export(run_dir: str | Path, exported=None) -> None:
    """After the export: the best trial, its test metrics and ``best/`` on the parent run.

    Args:
        run_dir: the local run directory; nothing happens without its ``mlflow_run.json``
            (a sweep with tracking=none).
        exported: the export's result (``best_dir``, ``report``), None when there is none.
    """
    run_dir = Path(run_dir)
    state = _read_state(run_dir)
    if not state:
        return
    try:
        _log_export(run_dir, state, exported)
    except Exception as exc:  # the export stands; only its copy in MLflow is missing
        print(
            f"hpo: MLflow: the export was not logged to the sweep's run ({_error_line(exc)}).",
            file=sys.stderr,
            flush=True,
        )


def _log_export(run_dir: Path, state: dict[str, Any], exported) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(state["tracking_uri"], run_dir))
    parent = state["parent_run_id"]
    best_path = run_dir / BEST_FILE
    if best_path.is_file():
        best = json.loads(best_path.read_text())
        client.set_tag(parent, "best_trial_id", best["trial_id"])
        if (value := _number(best.get("cv_mean"))) is not None:
            client.log_metric(parent, f"best_{best['metric']}", value)
        child = state["trials"].get(best["trial_id"])
        if child:
            client.set_tag(child, "hpo.best", "true")
    if exported is None:
        return
    test = exported.report.get("test") or {}
    tests = {
        f"test_{k}": v for k, v in test.items() if k not in NOT_METRICS and _number(v) is not None
    }
    _log_batch(client, parent, tests)
    client.log_artifacts(parent, str(exported.best_dir), artifact_path="best")


def _log_batch(client, run_id: str, metrics: dict, step: int = 0, params: dict | None = None):
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
    )
