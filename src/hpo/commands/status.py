"""`hpo status JOB_ID`: the state of a sweep submitted with `hpo submit`."""

from __future__ import annotations

import argparse
import datetime as _dt

from hpo.commands.job_options import add_job_arguments, connect

NAME = "status"
HELP = "show the status of a submitted sweep (a Ray Job)"

RUN_DIR_KEY = "hpo_run_dir"  # job metadata written by `hpo submit`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", help="the job's submission id, as `hpo submit` printed it")
    add_job_arguments(parser)


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return _dt.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


def run(args: argparse.Namespace) -> int:
    client = connect(args)
    info = client.info(args.job_id)
    status = str(info.status).split(".")[-1]
    print(f"job: {args.job_id}")
    print(f"status: {status}" + (f" ({info.message})" if info.message else ""))
    print(f"entrypoint: {info.entrypoint}")
    print(f"results: {(info.metadata or {}).get(RUN_DIR_KEY, '-')}")
    print(f"started: {_time(info.start_time)}  ended: {_time(info.end_time)}")
    if status in ("SUCCEEDED", "FAILED", "STOPPED"):
        code = client.exit_code(args.job_id)
        print(f"exit code: {code}")
        return code
    return 0
