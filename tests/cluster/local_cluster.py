"""A real two-node Ray cluster on this machine, for tests: `ray start --head --block` plus a
second `ray start --address --block`, each with its own temp dir, ports and token auth.

Cleanup never uses `ray stop` (it kills every Ray on the machine): every process this
cluster starts carries a marker environment variable, and `stop()` kills exactly those.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join([str(SRC), str(TESTS)])  # this checkout, and user_models
MARKER = "HPO_TEST_CLUSTER_ID"


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of live processes whose environment has ``name=value`` (read from /proc)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_all(pids: list[int], timeout: float = 10) -> None:
    """SIGKILL the given pids and wait until they are gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_ports() -> list[str]:
    low = free_port()
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        # Worker ports: between Ray's default range (10002-19999, other Rays here) and the
        # kernel's ephemeral ports (32768+, where free_port() picks).
        f"--min-worker-port={20000 + low % 12000}",
        f"--max-worker-port={20000 + low % 12000 + 200}",
    ]


class LocalRayCluster:
    """Head + worker nodes started by `ray start --block` under one short temp dir.

    Args:
        cpus_per_node: `--num-cpus` of each node.
        nodes: how many nodes (the first is the head).
        token: the auth token (RAY_AUTH_MODE=token); None for no auth.
        env: extra environment for every node (and so for jobs and workers).
    """

    def __init__(
        self,
        cpus_per_node: int = 1,
        nodes: int = 2,
        token: str | None = "auto",
        env: dict[str, str] | None = None,
    ) -> None:
        # Short: Ray's unix sockets live under the temp dir (path limit ~107 chars).
        self.root = Path(tempfile.mkdtemp(prefix="hpoc", dir="/tmp"))
        self.cluster_id = self.root.name
        self.token = secrets.token_hex(16) if token == "auto" else token
        self.token_file = self.root / "token"
        self.env = dict(os.environ, **(env or {}), **{MARKER: self.cluster_id})
        self.env["RAY_USAGE_STATS_ENABLED"] = "0"
        if self.token:
            self.token_file.write_text(self.token)
            self.token_file.chmod(0o600)
            self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_file))
        else:
            self.env["RAY_AUTH_MODE"] = "disabled"
        self.env.pop("RAY_AUTH_TOKEN", None)
        self.env.pop("RAY_ADDRESS", None)
        self.cpus_per_node = cpus_per_node
        self.num_nodes = nodes
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.processes: list[subprocess.Popen] = []

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.root / f"{name}.log").open("w")
        temp_dir = self.root / name
        temp_dir.mkdir()
        command = [
            RAY, "start", "--block", "--disable-usage-stats",
            f"--temp-dir={temp_dir}", f"--num-cpus={self.cpus_per_node}", "--num-gpus=0",
            "--node-ip-address=127.0.0.1", f"--object-store-memory={80 * 1024**2}",
            *_node_ports(), *args,
        ]  # fmt: skip
        self.processes.append(
            subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def start(self, timeout: float = 180) -> LocalRayCluster:
        self._start("head", [
            "--head", f"--port={self.gcs_port}", "--include-dashboard=true",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
        ])  # fmt: skip
        self._wait_for(lambda: len(self.node_ids()) >= 1, timeout, "the head node")
        for index in range(1, self.num_nodes):
            self._start(f"node{index}", [f"--address={self.gcs_address}"])
        self._wait_for(lambda: len(self.node_ids()) >= self.num_nodes, timeout, "the nodes")
        return self

    def _get(self, endpoint: str) -> dict:
        request = urllib.request.Request(
            f"{self.dashboard_url}{endpoint}",
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def node_ids(self) -> set[str]:
        """Ids of the live nodes, from the dashboard's state API (empty while it starts)."""
        try:
            nodes = self._get("/api/v0/nodes")["data"]["result"]["result"]
        except (OSError, KeyError, ValueError):
            return set()
        return {n["node_id"] for n in nodes if n["state"] == "ALIVE"}

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"ray start exited early:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"{what} did not come up in {timeout:.0f}s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log"))
        )

    def own_processes(self) -> list[int]:
        """Pids of every live process that carries this cluster's marker (nodes, workers,
        job drivers: they all inherit the environment of `ray start`)."""
        return processes_with_env(MARKER, self.cluster_id)

    def stop(self) -> None:
        """Stop the nodes (SIGTERM to `ray start --block`), then kill whatever is left."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        kill_all(self.own_processes())
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def run_hpo(*args: str, env: dict[str, str] | None = None, timeout: float = 400):
    """`python -m hpo ARGS` as a user runs it, outside the cluster, with no Ray token in
    its environment (tests pass --token-file, or nothing)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return subprocess.run(
        [sys.executable, "-m", "hpo", *args],
        env={**base, "PYTHONPATH": PYTHONPATH, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
