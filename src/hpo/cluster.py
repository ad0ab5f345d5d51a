"""Starting, joining and stopping Ray, and Ray's Job Submission API. The CLI's commands and
the sweep come here for Ray.

Security: a Ray dashboard / Jobs API runs code for whoever reaches it. Our docs bind it to
127.0.0.1 (reach it through an SSH tunnel or ``kubectl port-forward``) and turn on Ray's
token auth (``RAY_AUTH_MODE=token``). ``hpo submit`` sends the token as a bearer header;
it reads it from ``--token-file``, else ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token`` (the places Ray itself looks), and never puts it into a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

import ray
from ray.exceptions import AuthenticationError

from hpo.errors import HPOError

DEFAULT_JOBS_ADDRESS = "http://127.0.0.1:8265"
TOKEN_HELP = (
    "pass --token-file PATH (the token the cluster was started with, e.g. from "
    "`ray get-auth-token` on the head node) or set RAY_AUTH_TOKEN_PATH"
)


# What Ray Tune imports on the driver before it starts the first trial: its callback
# telemetry (``tag_callbacks`` in ``tune.run``) imports every tracking integration whenever
# callbacks are passed, as hpo's always are, and so mlflow, wandb or comet where installed:
# mlflow alone is 1.0-1.6 s on 2 cores, on the path to the first trial.
TUNE_DRIVER_IMPORTS = (
    "ray.tune",
    "ray.air.integrations.mlflow",
    "ray.air.integrations.wandb",
    "ray.air.integrations.comet",
    "ray.tune.logger.aim",
)


def import_in_background(names: tuple[str, ...] = TUNE_DRIVER_IMPORTS) -> threading.Thread:
    """Import ``names`` in a daemon thread. ``start_ray`` runs it while ``ray.init`` waits
    for Ray's processes (seconds for a local Ray), so that the driver has paid for them
    when Tune asks; a sweep that joins a cluster waits for what ``ray.init`` did not
    cover. A name the main thread imports meanwhile waits for the thread's import (Python's
    per-module import lock); one that fails is left for the caller's own import to show."""

    def run() -> None:
        for name in names:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="hpo-tune-imports", daemon=True)
    thread.start()
    return thread


def start_ray(cluster_cfg) -> bool:
    """Start an embedded Ray, or join ``cluster.address``. Returns True if this call
    started or joined Ray (and so should shut it down). Ray Tune's driver-side imports
    are made meanwhile (:func:`import_in_background`)."""
    if ray.is_initialized():
        return False
    imports = import_in_background()
    common = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "configure_logging": True,
    }
    try:
        if cluster_cfg.address:
            ray.init(address=cluster_cfg.address, **common)
        else:
            # address="local": always a fresh embedded Ray, never a cluster that
            # `ray start` left running on this machine.
            ray.init(
                address="local",
                num_cpus=cluster_cfg.num_cpus or os.cpu_count(),
                num_gpus=cluster_cfg.num_gpus,
                **common,
            )
    except AuthenticationError as exc:
        raise HPOError(
            f"config key `cluster.address`: the Ray cluster at {cluster_cfg.address!r} "
            f"refused this process ({_first_line(exc)}); set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN_PATH to the cluster's token file."
        ) from exc
    except ConnectionError as exc:
        raise HPOError(
            f"config key `cluster.address`: cannot reach a Ray cluster at "
            f"{cluster_cfg.address!r} ({exc}); start one with `ray start --head` or leave "
            "cluster.address=null for a local Ray."
        ) from exc
    imports.join()  # done before the sweep goes on: no import of the main thread races it
    return True


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


def node_resources() -> list[dict[str, float]]:
    """The resources (CPU, GPU, memory, custom) of every live node of the joined cluster."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))


# --- Ray Jobs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str | None
    source: str  # where it came from, for error messages (never the token itself)


def _read_token(path: Path, source: str) -> Token:
    """The token in ``path``; a warning when other users can read the file."""
    mode = path.stat().st_mode
    if mode & 0o077:
        print(
            f"hpo: warning: the token file {path} is readable by other users (mode "
            f"{oct(mode & 0o777)}); make it private: chmod 600 {path}",
            file=sys.stderr,
        )
    return Token(path.read_text().strip() or None, source)


def resolve_token(token_file: str | None = None) -> Token:
    """The cluster's auth token: ``--token-file``, else where Ray itself looks."""
    if token_file:
        path = Path(token_file).expanduser()
        if not path.is_file():
            raise HPOError(f"--token-file {token_file}: no such file; {TOKEN_HELP}.")
        return _read_token(path, f"--token-file {token_file}")
    if os.environ.get("RAY_AUTH_TOKEN"):
        return Token(os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN")
    env_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if env_path:
        path = Path(env_path).expanduser()
        if not path.is_file():
            raise HPOError(f"RAY_AUTH_TOKEN_PATH={env_path}: no such file; {TOKEN_HELP}.")
        return _read_token(path, f"RAY_AUTH_TOKEN_PATH={env_path}")
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file():
        return _read_token(default, str(default))
    return Token(None, "no token")


def insecure_address_warning(address: str) -> str | None:
    """A warning when the token would cross the network unencrypted."""
    parsed = urlparse(address if "://" in address else f"http://{address}")
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parsed.scheme == "http" and not loopback:
        return (
            f"{address} is plain http on a non-local host: the auth token and your job "
            "travel unencrypted. Reach the dashboard through `ssh -L 8265:127.0.0.1:8265 "
            "HEAD` or `kubectl port-forward` and use http://127.0.0.1:8265 (cluster/README.md)."
        )
    return None


class JobClient:
    """Ray's ``JobSubmissionClient`` with the token sent and errors made HPOErrors.

    Args:
        address: the dashboard's HTTP address, e.g. ``http://127.0.0.1:8265``.
        token_file: a file holding the cluster's auth token (see ``resolve_token``).
    """

    def __init__(self, address: str, token_file: str | None = None) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        self.token = resolve_token(token_file)
        headers = {"Authorization": f"Bearer {self.token.value}"} if self.token.value else {}
        with self._errors():
            self._client = JobSubmissionClient(address, headers=headers)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except AuthenticationError as exc:
            if "Authentication required" in str(exc) or self.token.value is None:
                raise HPOError(
                    f"the Ray cluster at {self.address} requires an auth token "
                    f"(RAY_AUTH_MODE=token) and none was sent ({self.token.source}); "
                    f"{TOKEN_HELP}."
                ) from None
            raise HPOError(
                f"the Ray cluster at {self.address} refused the auth token from "
                f"{self.token.source}; {TOKEN_HELP}."
            ) from None
        except ConnectionError as exc:
            raise HPOError(
                f"cannot reach the Ray Jobs API at {self.address} ({_first_line(exc)}); "
                "check --address (the dashboard, port 8265 by default) and that the tunnel "
                "or port-forward to it is up."
            ) from None
        except RuntimeError as exc:  # what the SDK raises for other HTTP errors
            raise HPOError(f"Ray Jobs API at {self.address}: {_first_line(exc)}") from None

    def submit(
        self,
        entrypoint: str,
        runtime_env: dict[str, Any],
        metadata: dict[str, str],
        submission_id: str | None = None,
    ) -> str:
        with self._errors():
            return self._client.submit_job(
                entrypoint=entrypoint,
                runtime_env=runtime_env,
                metadata=metadata,
                submission_id=submission_id,
            )

    def info(self, job_id: str):
        """Ray's ``JobDetails`` (status, message, metadata, driver_exit_code, ...)."""
        with self._errors():
            return self._client.get_job_info(job_id)

    def logs(self, job_id: str) -> str:
        with self._errors():
            return self._client.get_job_logs(job_id)

    def follow(self, job_id: str, out: TextIO = sys.stdout) -> None:
        """Copy the job's logs to ``out`` as they come, until the job ends."""

        async def tail() -> None:
            async for chunk in self._client.tail_job_logs(job_id):
                out.write(chunk)
                out.flush()

        with self._errors():
            asyncio.run(tail())

    def exit_code(self, job_id: str) -> int:
        """The job's exit status as a command's: the driver's exit code, 0 on success."""
        info = self.info(job_id)
        status = str(info.status)
        if status.endswith("SUCCEEDED"):
            return 0
        code = getattr(info, "driver_exit_code", None)
        if code:
            return int(code)
        return 130 if status.endswith("STOPPED") else 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
