"""`hpo resume RUN_DIR`: finish a sweep that was interrupted or whose driver died."""

from __future__ import annotations

import argparse

NAME = "resume"
HELP = "finish an interrupted sweep (finished trials are kept, unfinished ones continue)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run directory (a path or URI) the sweep printed")
    parser.add_argument(
        "--trust-run-dir",
        action="store_true",
        help="resume a run directory that other users can write (resume unpickles its "
        "Ray Tune state, which runs code: trust it as you trust code)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="cluster.* overrides only, e.g. cluster.address=auto to resume on a cluster",
    )


def run(args: argparse.Namespace) -> int:
    from hpo.commands.sweep import export_and_summarize
    from hpo.config.compose import load_run_config
    from hpo.loopback import keep_embedded_ray_on_loopback
    from hpo.sweep.storage_trust import check_trusted_run_dir

    check_trusted_run_dir(args.run_dir, args.trust_run_dir)  # before anything is unpickled
    _check_local_run_dir(args.run_dir)
    keep_embedded_ray_on_loopback(_cluster_address(args.run_dir, args.overrides))
    from hpo.sweep.resume import resume_sweep

    # A resumed sweep ends like any sweep: its best trial exported into RUN_DIR/best.
    result = resume_sweep(args.run_dir, args.overrides)
    return export_and_summarize(result, load_run_config(result.run_dir))


def _check_local_run_dir(run_dir: str) -> None:
    """A local run directory that is missing or has no valid config.yaml: its one-line
    error at once, not after the ~10 s import of the resume machinery (Ray Tune, torch,
    Lightning). resume_sweep checks again, and checks a URI's."""
    from hpo.config.compose import load_run_config
    from hpo.sweep.storage import RunLocation, is_uri

    if not is_uri(run_dir):
        load_run_config(RunLocation.open(run_dir).local)


def _cluster_address(run_dir: str, overrides: list[str]) -> str | None:
    """``cluster.address`` of the resumed run: an override, else its config.yaml."""
    for override in overrides:
        if override.startswith("cluster.address="):
            value = override.split("=", 1)[1]
            return None if value in ("", "null", "None") else value
    from pathlib import Path

    from omegaconf import OmegaConf

    from hpo.rundir import CONFIG

    saved = Path(run_dir).expanduser() / CONFIG
    if not saved.is_file():  # a URI: joining is the safe assumption (reachable driver)
        return "unknown"
    return OmegaConf.select(OmegaConf.load(saved), "cluster.address")
