"""`hpo status RUN_DIR`: a sweep's state, progress, best so far and trials, read from its
run directory (a path or a URI); `hpo status JOB_ID`: a Ray Job that `hpo submit`
started."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from pathlib import Path

from hpo.commands.job_options import add_job_arguments, connect

NAME = "status"
HELP = (
    "show a sweep's progress, best so far and trials (RUN_DIR, a path or URI), or a "
    "submitted sweep's Ray Job (JOB_ID)"
)

RUN_DIR_KEY = "hpo_run_dir"  # job metadata written by `hpo submit`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="RUN_DIR|JOB_ID",
        help="a run directory (a path or URI, as `hpo sweep` printed it), or the job's "
        "submission id, as `hpo submit` printed it",
    )
    add_job_arguments(parser)


def is_run_dir_argument(target: str) -> bool:
    """A path or URI (a run directory), not a job's submission id (``raysubmit_...``)."""
    return (
        "://" in target
        or os.sep in target
        or target.startswith((".", "~"))
        or Path(target).exists()
    )


def run(args: argparse.Namespace) -> int:
    if is_run_dir_argument(args.target):
        from hpo.run_state import read_run_info
        from hpo.run_view import status_lines

        print("\n".join(status_lines(read_run_info(args.target))))
        return 0
    return job_status(args)


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return _dt.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


def job_status(args: argparse.Namespace) -> int:
    client = connect(args)
    info = client.info(args.target)
    status = str(info.status).split(".")[-1]
    print(f"job: {args.target}")
    print(f"status: {status}" + (f" ({info.message})" if info.message else ""))
    print(f"entrypoint: {info.entrypoint}")
    print(f"results: {(info.metadata or {}).get(RUN_DIR_KEY, '-')}")
    print(f"started: {_time(info.start_time)}  ended: {_time(info.end_time)}")
    if status in ("SUCCEEDED", "FAILED", "STOPPED"):
        code = client.exit_code(args.target)
        print(f"exit code: {code}")
        return code
    return 0
