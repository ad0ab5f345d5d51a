"""`hpo submit` / `hpo status` / `hpo logs` against a real two-node Ray cluster with token
auth, started by the test (tests/cluster/conftest.py)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from local_cluster import run_hpo

pytestmark = pytest.mark.slow

TINY = [
    "data=iris",
    "cv.folds=3",
    "trainer.max_epochs=3",
    "budget.num_samples=4",
    "scheduler=fifo",
]


JOB_CODE = Path(__file__).resolve().parent / "job_code"


def users_config_dir(tmp_path: Path) -> Path:
    """hpo's conf/ plus a user's model and search space, as a user keeps them."""
    from hpo.config.compose import conf_dir

    conf = tmp_path / "myconf"
    shutil.copytree(conf_dir(), conf)
    (conf / "model" / "paced.yaml").write_text(
        "_target_: paced_model.PacedLinear\nname: paced\npause_s: 1.0\n"
    )
    (conf / "search_space" / "paced.yaml").write_text("optim.lr: tag(log, interval(1e-2, 3e-1))\n")
    return conf


def job_id_of(output: str) -> str:
    return re.search(r"submitted job (\S+) ", output).group(1)


def test_submit_runs_the_sweep_on_both_nodes_and_stores_the_results(two_nodes, tmp_path):
    storage = f"file://{tmp_path / 'storage'}"
    started = time.monotonic()
    done = run_hpo(
        "submit", "--address", two_nodes.dashboard_url, "--token-file", str(two_nodes.token_file),
        "--config-dir", str(users_config_dir(tmp_path)), "--working-dir", str(JOB_CODE),
        *TINY, "model=paced", "search_space=paced", f"output_dir={storage}",
    )  # fmt: skip
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the job's own output streamed back, then where the results are
    assert "trials: 4 (4 completed" in done.stdout
    run_dir = re.search(r"results in (\S+)", done.stdout).group(1)
    assert run_dir.startswith(f"{storage}/iris-paced/")
    local = Path(run_dir.removeprefix("file://"))
    assert {"config.yaml", "trials.jsonl", "trials.parquet", "best_trial.json", "tune"} <= {
        p.name for p in local.iterdir()
    }
    frame = pd.read_parquet(local / "trials.parquet")
    assert frame["trial_id"].nunique() == 4 and set(frame["status"]) == {"completed"}
    # Both nodes share one IP here; Ray's node ids tell them apart.
    assert set(frame["node_id"]) == two_nodes.node_ids()
    print(f"\nsubmit -> job succeeded in {wall:.1f}s: {done.stdout.splitlines()[0]}")


def test_no_wait_status_logs_and_the_jobs_exit_status(two_nodes, tmp_path):
    # A trial that asks for 2 CPUs fits on no node (each has 1; together they have 2):
    # the job fails at once with the reason, and the commands pass its exit status on.
    common = ["--address", two_nodes.dashboard_url, "--token-file", str(two_nodes.token_file)]
    started = time.monotonic()
    submitted = run_hpo(
        "submit", *common, "--no-wait", *TINY, "resources.cpus_per_trial=2",
        f"output_dir={tmp_path / 'runs'}",
    )  # fmt: skip
    latency = time.monotonic() - started
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = job_id_of(submitted.stdout)
    assert f"hpo logs --follow {job_id}" in submitted.stdout

    logs = run_hpo("logs", "--follow", job_id, *common)
    assert logs.returncode == 2, logs.stdout[-3000:] + logs.stderr[-3000:]
    assert "config key `resources.cpus_per_trial`: 2 CPUs per trial, but no single node" in (
        logs.stdout
    )
    status = run_hpo("status", job_id, *common)
    assert status.returncode == 2
    assert "status: FAILED" in status.stdout and "exit code: 2" in status.stdout
    assert f"results: {tmp_path / 'runs'}/iris-mlp/" in status.stdout
    print(f"\nsubmit --no-wait returned in {latency:.1f}s ({submitted.stdout.splitlines()[0]})")

    # `hpo submit --resume` runs `hpo resume` as a job; this run never started Tune, so
    # the job fails with the reason, and so does the command.
    run_dir = re.search(r"results: (\S+)", status.stdout).group(1)
    resumed = run_hpo("submit", *common, "--resume", run_dir)
    assert resumed.returncode == 2, resumed.stdout[-3000:]
    assert "has no search state" in resumed.stdout


def test_a_submit_without_the_right_token_is_refused(two_nodes, tmp_path):
    address = ["--address", two_nodes.dashboard_url]
    # No token anywhere (a fresh HOME has no ~/.ray/auth_token).
    missing = run_hpo(
        "submit", *address, *TINY, f"output_dir={tmp_path}", env={"HOME": str(tmp_path)}
    )
    assert missing.returncode == 2
    assert "requires an auth token (RAY_AUTH_MODE=token) and none was sent" in missing.stderr
    assert "--token-file" in missing.stderr

    wrong = tmp_path / "wrong_token"
    wrong.write_text("not-the-token")
    refused = run_hpo("status", "raysubmit_none", *address, "--token-file", str(wrong))
    assert refused.returncode == 2
    assert f"refused the auth token from --token-file {wrong}" in refused.stderr
