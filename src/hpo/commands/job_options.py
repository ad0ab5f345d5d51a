"""Options shared by the commands that talk to a cluster's Jobs API (submit, status, logs)."""

from __future__ import annotations

import argparse
import os
import sys

ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"  # what `ray job` reads too


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get(ADDRESS_ENV, "http://127.0.0.1:8265"),
        help=f"the Ray dashboard / Jobs API (default: ${ADDRESS_ENV} or http://127.0.0.1:8265; "
        "reach a remote one through an SSH tunnel or kubectl port-forward)",
    )
    parser.add_argument(
        "--token-file",
        help="file with the cluster's auth token (default: $RAY_AUTH_TOKEN, "
        "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)",
    )


def connect(args: argparse.Namespace):
    """A JobClient for ``--address`` with the token; warns when the link is unencrypted."""
    from hpo.cluster import JobClient, insecure_address_warning

    warning = insecure_address_warning(args.address)
    if warning:
        print(f"hpo: warning: {warning}", file=sys.stderr)
    return JobClient(args.address, args.token_file)


def follow_hint(job_id: str, args: argparse.Namespace) -> str:
    where = f" --address {args.address}"
    return f"`hpo logs --follow {job_id}{where}` / `hpo status {job_id}{where}`"
