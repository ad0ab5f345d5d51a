"""One tiny real sweep with tracking=mlflow, read back by each tool a user watches it with:
MLflow (MlflowClient.search_runs), TensorBoard (its EventAccumulator), optuna-dashboard (its
WSGI app's HTTP API, served while the sweep runs) and, in headless Chromium, TensorBoard's
page and the MLflow UI (their servers started while the sweep runs, stopped after) and
report.html. Every tool must show the trials of trials.parquet."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pandas as pd
import pytest

from hpo.cli import main
from hpo.errors import ConfigError

pytestmark = pytest.mark.slow

FOLDS, EPOCHS = 2, 4
SWEEP = [
    "data=iris",
    f"cv.folds={FOLDS}",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.patience={EPOCHS}",
    "budget.num_samples=4",
    "budget.max_concurrent_trials=2",
    "scheduler.grace_period=1",
    "scheduler.reduction_factor=2",
    "searcher.n_startup_trials=2",
    "export.baselines=false",
    "export.permutation_repeats=1",
    "tracking=mlflow",
]
STATUS = {"completed": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
OPTUNA_STATE = {"completed": "Complete", "stopped": "Pruned", "failed": "Fail"}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


class DashboardWatcher(threading.Thread):
    """optuna-dashboard on the run's journal, opened as soon as the sweep creates it (what
    `optuna-dashboard RUN_DIR/optuna_journal.log` does), polled while the sweep runs."""

    def __init__(self, journal: Path) -> None:
        super().__init__(daemon=True)
        self.journal, self.stop, self.snapshots = journal, threading.Event(), []
        self.server = None

    def run(self) -> None:
        import optuna_dashboard

        while not (self.journal.is_file() and self.journal.stat().st_size):
            if self.stop.wait(0.1):
                return
        app = optuna_dashboard.wsgi(str(self.journal))  # the path, as its CLI takes it
        self.server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        while not self.stop.wait(0.3):
            try:
                self.snapshots.append([t["state"] for t in self.study()["trials"]])
            except OSError:  # a request cut short: the next poll counts
                continue

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def study(self) -> dict:
        (summary,) = get_json(f"{self.url}/api/studies")["study_summaries"]
        return get_json(f"{self.url}/api/studies/{summary['study_id']}")


@pytest.fixture(scope="module")
def tracked(ray_local, tmp_path_factory):
    """The sweep (and its export), watched live by optuna-dashboard and, where Chromium
    can look at them, TensorBoard and the MLflow UI."""
    run = tmp_path_factory.mktemp("tracked") / "run"
    watcher = DashboardWatcher(run / "optuna_journal.log")
    watcher.start()
    viewers = Viewers(run, tmp_path_factory.mktemp("viewers")) if CHROMIUM else None
    try:
        try:
            assert main(["sweep", *SWEEP, f"run_dir={run}"]) == 0
        finally:
            watcher.stop.set()
            watcher.join()
        frame = pd.read_parquet(run / "trials.parquet")
        yield run, frame[frame["epoch"] > 0], watcher, viewers
    finally:
        if watcher.server is not None:
            watcher.server.shutdown()
        if viewers is not None:
            viewers.stop()


def per_trial_best(frame: pd.DataFrame) -> dict[str, float]:
    return frame.groupby("trial_id")["val_loss"].min().to_dict()


def mlflow_runs(run: Path):
    from mlflow import MlflowClient

    state = json.loads((run / "mlflow_run.json").read_text())
    client = MlflowClient(f"sqlite:///{run}/mlflow.db")
    runs = client.search_runs([state["experiment_id"]], max_results=1000)
    parent = [r for r in runs if r.info.run_id == state["parent_run_id"]]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == state["parent_run_id"]]
    return client, state, parent, children


def test_mlflow_shows_every_trial_of_trials_parquet(tracked):
    run, frame, _, _ = tracked
    client, state, parent, children = mlflow_runs(run)
    status = frame.groupby("trial_id")["status"].last()
    assert len(parent) == 1 and len(children) == frame["trial_id"].nunique() == 4
    by_trial = {r.data.tags["trial_id"]: r for r in children}
    assert set(by_trial) == set(status.index)
    space = json.loads((run / "best_trial.json").read_text())["params"]
    for trial_id, child in by_trial.items():
        assert child.info.status == STATUS[status[trial_id]]
        assert child.data.tags["hpo.status"] == status[trial_id]
        rows = frame[frame["trial_id"] == trial_id].sort_values("epoch")
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in history] == rows["epoch"].tolist()
        assert [m.value for m in history] == pytest.approx(rows["val_loss"].tolist())
        folds = client.get_metric_history(child.info.run_id, f"val_loss/fold_{FOLDS - 1}")
        assert [m.value for m in folds] == pytest.approx([f[-1] for f in rows["fold_val_loss"]])
        assert set(child.data.params) == set(space)
        for key, value in child.data.params.items():
            assert value == str(rows[key].iloc[0])
    best = min(per_trial_best(frame).values())
    assert min(min(m.value for m in client.get_metric_history(c.info.run_id, "val_loss"))
               for c in children) == pytest.approx(best)  # fmt: skip
    (parent,) = parent
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_loss"] == pytest.approx(best)
    best_id = parent.data.tags["best_trial_id"]
    assert by_trial[best_id].data.tags["hpo.best"] == "true"
    assert parent.data.params["searcher"] == "tpe" and "space.optim.lr" in parent.data.params
    report = json.loads((run / "best" / "report.json").read_text())
    assert parent.data.metrics["test_accuracy"] == pytest.approx(report["test"]["accuracy"])
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "best")}
    assert {"best/model.onnx", "best/report.html", "best/report.json", "best/plots"} <= logged


def test_tensorboard_has_per_trial_per_fold_scalars_and_the_hparams_view(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run, frame, _, _ = tracked
    folders = sorted((run / "tensorboard").glob("trial_*"))
    assert {f.name.removeprefix("trial_") for f in folders} == set(frame["trial_id"])
    bests = {}
    for folder in folders:
        rows = frame[frame["trial_id"] == folder.name.removeprefix("trial_")].sort_values("epoch")
        scalars = EventAccumulator(str(folder))
        scalars.Reload()
        for k in range(FOLDS):
            events = scalars.Scalars(f"val_loss/fold_{k}")
            assert [e.step for e in events] == rows["epoch"].tolist()
            assert [e.value for e in events] == pytest.approx([f[k] for f in rows["fold_val_loss"]])
        means = [e.value for e in scalars.Scalars("val_loss/mean")]
        assert means == pytest.approx(rows["val_loss"].tolist(), rel=1e-6)
        hparams = EventAccumulator(str(folder / "hparams"))
        hparams.Reload()
        content = hparams.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        space = {c for c in frame.columns if c.startswith(("optim.", "model."))}
        assert set(start.hparams) == space
        bests[folder.name] = hparams.Scalars("best_val_loss")[0].value
    assert min(bests.values()) == pytest.approx(min(per_trial_best(frame).values()), rel=1e-6)


def test_optuna_dashboard_shows_the_study_live_and_at_the_end(tracked):
    run, frame, watcher, _ = tracked
    status = frame.groupby("trial_id")["status"].last()
    # While the sweep ran, the dashboard showed trials running and fewer finished.
    live = [s for s in watcher.snapshots if "Running" in s]
    assert live and min(len(s) - s.count("Running") for s in live) < len(status)
    study = watcher.study()
    assert len(study["trials"]) == len(status)
    best = per_trial_best(frame)
    for trial in study["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        trial_id = attrs["tune_trial_id"]
        assert trial["state"] == OPTUNA_STATE[status[trial_id]]
        values = [v["value"] for v in trial["intermediate_values"]]
        assert min(values) == pytest.approx(best[trial_id])
    completed = [best[t] for t in status.index if status[t] == "completed"]
    assert study["best_trials"][0]["values"][0] == pytest.approx(min(completed))


def test_a_tracking_uri_mlflow_cannot_use_fails_before_the_run_directory(tmp_path, small_cfg):
    from hpo.sweep import run_sweep
    from hpo.sweep.mlflow_tracking import check_tracking

    # MLflow 3 refuses a plain-file store: one line, before Ray and the run directory
    cfg = small_cfg("tracking=mlflow", f"tracking.uri=file://{tmp_path}/mlruns")
    with pytest.raises(ConfigError, match=re.escape("config key `tracking.uri`")):
        run_sweep(cfg, run_dir=tmp_path / "run", stream=None)
    assert not (tmp_path / "run").exists() and not (tmp_path / "mlruns").exists()
    for override, key in [
        (f"tracking.uri=http://127.0.0.1:{free_port()}", "tracking.uri"),  # no server there
        ("tracking.name=wandb", "tracking.name"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(f"config key `{key}`")):
            check_tracking(small_cfg("tracking=mlflow", override))


def test_a_tracking_server_lost_mid_sweep_warns_once_and_the_sweep_goes_on(
    tmp_path, small_cfg, monkeypatch, capsys
):
    from hpo.sweep.mlflow_tracking import MLflowTracker
    from hpo.sweep.storage import RunLocation

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once, not in minutes
    cfg = small_cfg("tracking=mlflow", f"tracking.uri=http://127.0.0.1:{free_port()}")
    tracker = MLflowTracker(RunLocation(tmp_path), cfg, ["val_loss"])
    tracker.setup()  # the parent run cannot be created: nothing answers
    tracker.on_experiment_end(trials=[])
    assert tracker.failed
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hpo: MLflow logging stopped (") and "the sweep goes on" in line


# --- a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process in its own session, stopped (with all it started) by stop()."""

    def __init__(self, args: list[str], url: str, log: Path, **env: str) -> None:
        self.url, self.log = url, log
        self.proc = subprocess.Popen(
            args,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )

    def wait(self, path: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.url} exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + path, timeout=5).close()
                return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"{self.url} did not answer in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


class Viewers:
    """TensorBoard and the MLflow UI on the run directory, started while the sweep runs, as
    a user watching it would (the MLflow UI once the sweep has created its store)."""

    def __init__(self, run: Path, logs: Path) -> None:
        self.run, self.logs, self.stopped = run, logs, threading.Event()
        port = free_port()
        self.tensorboard = Server(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(run / "tensorboard"),
             "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
            f"http://127.0.0.1:{port}", logs / "tensorboard.log",
        )  # fmt: skip
        self.mlflow_ui: Server | None = None
        self.starter = threading.Thread(target=self._start_mlflow_ui, daemon=True)
        self.starter.start()

    def _start_mlflow_ui(self) -> None:
        while not (self.run / "mlflow_run.json").exists():
            if self.stopped.wait(0.2):
                return
        port = free_port()
        self.mlflow_ui = Server(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{self.run}/mlflow.db", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            f"http://127.0.0.1:{port}", self.logs / "mlflow.log",
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # no job runner processes for a UI
        )  # fmt: skip

    def stop(self) -> None:
        self.stopped.set()
        self.starter.join()
        self.tensorboard.stop()
        if self.mlflow_ui is not None:
            self.mlflow_ui.stop()


def dump_dom(url: str, profile: Path, budget_ms: int = 4000) -> str:
    """The page's DOM after its scripts ran, as headless Chromium renders it."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--window-size=1400,2000", f"--user-data-dir={profile}",
         f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_text(dom: str) -> str:
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.fixture(scope="module")
def pages(tracked, tmp_path_factory):
    """TensorBoard's page, the MLflow UI's parent run and a child run's charts, and
    report.html, each rendered by headless Chromium while its server runs."""
    if CHROMIUM is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install chromium` (the README's test "
            "command and .ci/run install it)"
        )
    run, frame, _, viewers = tracked
    tmp = tmp_path_factory.mktemp("browser")
    tensorboard, mlflow_ui = viewers.tensorboard, viewers.mlflow_ui
    assert mlflow_ui is not None  # started once the sweep created its store
    tensorboard.wait("/")
    mlflow_ui.wait("/health")
    _, state, (parent,), children = mlflow_runs(run)
    experiment = f"{mlflow_ui.url}/#/experiments/{state['experiment_id']}/runs"
    # report.html plus a script that counts the plots the browser decoded
    counted = tmp / "report_counted.html"
    counted.write_text(
        (run / "best" / "report.html").read_text()
        + "<script>addEventListener('load', () => { document.body.dataset.decoded = "
        "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });"
        "</script>"
    )
    urls = {
        "tensorboard": f"{tensorboard.url}/#timeseries",
        "parent": f"{experiment}/{parent.info.run_id}",
        "child": f"{experiment}/{children[0].info.run_id}/model-metrics",
        "report": counted.as_uri(),
    }
    budgets = [10_000 if name == "child" else 4000 for name in urls]  # Plotly loads late
    with ThreadPoolExecutor(len(urls)) as pool:
        dumped = pool.map(dump_dom, urls.values(), [tmp / n for n in urls], budgets)
        doms = dict(zip(urls, dumped))
    for _ in range(4):  # Plotly's chunk can miss the budget on a loaded machine; cached now
        if "js-plotly-plot" not in doms["child"]:
            doms["child"] = dump_dom(urls["child"], tmp / "child", 30_000)
    yield run, frame, parent, children, doms


def test_tensorboard_page_lists_every_trial_with_per_fold_charts(pages):
    run, frame, _, _, doms = pages
    dom, text = doms["tensorboard"], page_text(doms["tensorboard"])
    assert set(re.findall(r"trial_([0-9a-f]{8})", text)) == set(frame["trial_id"])
    assert f"val_loss {FOLDS + 1} cards" in text  # NAME/mean and NAME/fold_K
    # the first card, each trial's best_val_loss (hparams), drawn with its values
    assert "line-chart" in dom and f"{min(per_trial_best(frame).values()):.4f}" in text


def test_mlflow_ui_shows_the_sweep_its_trials_and_their_charts(pages):
    run, frame, parent, children, doms = pages
    text = page_text(doms["parent"])
    assert parent.info.run_name in text and "Child runs" in text
    for trial_id in frame["trial_id"].unique():
        assert f"trial_{trial_id}" in text
    assert "best_val_loss" in text and "test_accuracy" in text and "space.optim.lr" in text
    child = page_text(doms["child"])
    assert children[0].info.run_name in child and f"val_loss ({FOLDS})" in child  # fold charts
    assert "js-plotly-plot" in doms["child"]  # the charts drawn


def test_report_html_shows_its_plots_in_the_browser(pages):
    run, frame, _, _, doms = pages
    dom = doms["report"]
    best = json.loads((run / "best_trial.json").read_text())
    assert best["trial_id"] in page_text(dom)
    images = len(re.findall(r"<img\b", dom))
    decoded = re.search(r'data-decoded="(\d+)"', dom)
    assert images >= 5 and decoded and int(decoded.group(1)) == images
