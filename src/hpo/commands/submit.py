"""`hpo submit --address URL [overrides]`: run a sweep as a Ray Job on a running cluster.

The job runs ``python -m hpo sweep`` with the same overrides on the cluster (hpo must be
installed there, see cluster/). ``--config-dir`` and ``--working-dir`` travel in the job's
runtime_env (its working_dir, unpacked next to the job's driver and on every worker).
The config is composed here first, so a bad override fails before anything is sent.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.commands.job_options import add_job_arguments, connect, follow_hint
from hpo.commands.status import RUN_DIR_KEY

NAME = "submit"
HELP = "run a sweep as a Ray Job on a running cluster (Hydra overrides after the command)"

SHIPPED_CONF = "hpo_conf"  # where --config-dir lands inside the job's working_dir
NOT_SHIPPED = (".git", ".venv", "venv", "__pycache__", "*.pyc", "runs", ".pytest_cache")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--config-dir", help="your conf/ directory; shipped with the job")
    parser.add_argument(
        "--working-dir",
        help="a directory shipped with the job and importable on every worker (your "
        "LightningModules, small data files); .git, .venv and runs/ stay behind",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="print the job id and return at once"
    )
    parser.add_argument("--job-id", help="the job's submission id (default: one Ray picks)")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted sweep on the cluster (`hpo resume RUN_DIR` as a job); "
        "RUN_DIR is a shared path or URI; takes no overrides",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides as for `hpo sweep`; output_dir must be a path every node sees "
        "or a URI (s3://bucket/runs)",
    )


@dataclass
class JobSpec:
    entrypoint: str
    run_dir: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def is_uri(path: str) -> bool:
    # as hpo.sweep.storage.is_uri; importing hpo.sweep here would load Ray Tune and torch
    return "://" in path


def job_overrides(overrides: list[str], run_dir: str) -> list[str]:
    """The user's overrides, plus joining the cluster and the run directory we chose."""
    extra = [] if any(o.startswith("cluster=") for o in overrides) else ["cluster=remote"]
    return [*overrides, *extra, f"run_dir='{run_dir}'"]


def stage_working_dir(args: argparse.Namespace, staging: Path) -> None:
    if args.working_dir:
        shutil.copytree(
            Path(args.working_dir).expanduser(),
            staging,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(*NOT_SHIPPED),
        )


def runtime_env(staging: Path) -> dict[str, Any]:
    """The job's runtime_env: the staged files (if any) as its working_dir. Never the
    token: the cluster's own processes have it, and a runtime_env is readable by anyone
    who can list the cluster's jobs."""
    env: dict[str, Any] = {"env_vars": {"PYTHONUNBUFFERED": "1"}}
    if any(staging.iterdir()):
        env["working_dir"] = str(staging)
    return env


def plan_job(args: argparse.Namespace, staging: Path) -> JobSpec:
    """Compose and check the config here, choose the run directory, stage the files."""
    from hpo.config import compose_config
    from hpo.errors import ConfigError

    cfg, _ = compose_config(list(args.overrides), args.config_dir)
    output_dir = str(cfg.output_dir)
    if not (is_uri(output_dir) or Path(output_dir).is_absolute()):
        raise ConfigError(
            f"config key `output_dir`: {output_dir!r} is relative, so the job would write "
            "into its temporary working directory on the cluster; pass a path every node "
            "sees (output_dir=/mnt/shared/runs) or a URI (output_dir=s3://bucket/runs)."
        )
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = cfg.run_dir or f"{output_dir.rstrip('/')}/{cfg.name}/{stamp}"
    if "'" in run_dir:
        raise ConfigError(f"config key `run_dir`: {run_dir!r} must not contain a quote.")
    overrides = job_overrides(list(args.overrides), run_dir)
    compose_config(overrides, args.config_dir)  # the job's exact override list composes

    command = ["python", "-m", "hpo", "sweep"]
    stage_working_dir(args, staging)
    if args.config_dir:
        if (staging / SHIPPED_CONF).exists():
            raise ConfigError(
                f"--working-dir already has a {SHIPPED_CONF}/ folder, where --config-dir goes; "
                "rename it."
            )
        shutil.copytree(Path(args.config_dir).expanduser(), staging / SHIPPED_CONF)
        command += ["--config-dir", SHIPPED_CONF]
    return JobSpec(
        entrypoint=shlex.join(command + overrides),
        run_dir=run_dir,
        runtime_env=runtime_env(staging),
        metadata={RUN_DIR_KEY: run_dir, "hpo_overrides": json.dumps(list(args.overrides))},
    )


def plan_resume_job(args: argparse.Namespace, staging: Path) -> JobSpec:
    """`hpo resume RUN_DIR` on the cluster; the run's own config.yaml fixes the sweep."""
    from hpo.errors import ConfigError

    if args.overrides or args.config_dir:
        raise ConfigError(
            "--resume takes no overrides or --config-dir: the run directory's config.yaml "
            "fixes the sweep."
        )
    if not (is_uri(args.resume) or Path(args.resume).is_absolute()):
        raise ConfigError(
            f"--resume {args.resume}: give the run directory as the cluster sees it, an "
            "absolute shared path or a URI (what `hpo submit` printed after `results`)."
        )
    stage_working_dir(args, staging)  # the user's modules, as for the original submit
    command = ["python", "-m", "hpo", "resume", args.resume, "cluster.address=auto"]
    return JobSpec(
        entrypoint=shlex.join(command),
        run_dir=args.resume,
        runtime_env=runtime_env(staging),
        metadata={RUN_DIR_KEY: args.resume, "hpo_resume": "true"},
    )


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hpo-job-") as staging:
        spec = (plan_resume_job if args.resume else plan_job)(args, Path(staging))
        started = time.monotonic()  # connect, upload the working_dir, submit
        client = connect(args)
        job_id = client.submit(spec.entrypoint, spec.runtime_env, spec.metadata, args.job_id)
    print(
        f"hpo: submitted job {job_id} to {args.address} in {time.monotonic() - started:.1f}s"
        f"\nhpo: results go to {spec.run_dir}",
        flush=True,
    )
    if args.no_wait:
        print(f"hpo: follow it with {follow_hint(job_id, args)}")
        return 0
    try:
        client.follow(job_id)
    except KeyboardInterrupt:
        print(
            f"\nhpo: stopped following; job {job_id} goes on (`ray job stop {job_id}` stops "
            f"it). {follow_hint(job_id, args)}",
            file=sys.stderr,
        )
        return 130
    code = client.exit_code(job_id)
    state = "succeeded" if code == 0 else f"failed (exit code {code})"
    print(f"hpo: job {job_id} {state}; results in {spec.run_dir}", flush=True)
    return code
