"""`hpo resume RUN_DIR`: finish a sweep that was interrupted or whose driver died."""

from __future__ import annotations

import argparse

NAME = "resume"
HELP = "finish an interrupted sweep (finished trials are kept, unfinished ones continue)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run directory (a path or URI) the sweep printed")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="cluster.* overrides only, e.g. cluster.address=auto to resume on a cluster",
    )


def run(args: argparse.Namespace) -> int:
    from hpo.commands.sweep import export_and_summarize
    from hpo.config.compose import load_run_config
    from hpo.sweep.resume import resume_sweep

    # A resumed sweep ends like any sweep: its best trial exported into RUN_DIR/best.
    result = resume_sweep(args.run_dir, args.overrides)
    return export_and_summarize(result, load_run_config(result.run_dir))
