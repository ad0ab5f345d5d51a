"""`hpo logs JOB_ID`: the output of a sweep submitted with `hpo submit`."""

from __future__ import annotations

import argparse
import sys

from hpo.commands.job_options import add_job_arguments, connect

NAME = "logs"
HELP = "print (or --follow) the logs of a submitted sweep (a Ray Job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", help="the job's submission id, as `hpo submit` printed it")
    parser.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    add_job_arguments(parser)


def run(args: argparse.Namespace) -> int:
    client = connect(args)
    if not args.follow:
        sys.stdout.write(client.logs(args.job_id))
        return 0
    try:
        client.follow(args.job_id)
    except KeyboardInterrupt:
        print(f"\nhpo: stopped following {args.job_id}; the job goes on.", file=sys.stderr)
        return 130
    return client.exit_code(args.job_id)
