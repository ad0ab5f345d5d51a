"""`hpo sweep [overrides]`: run a sweep."""

from __future__ import annotations

import argparse

NAME = "sweep"
HELP = "run a sweep (Hydra overrides after the command)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cfg", choices=["job"], help="print the composed config (with the search space) and exit"
    )
    parser.add_argument("--config-dir", help="a conf/ directory to use instead of hpo's own")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, e.g. data=wine 'optim.lr=tag(log, interval(1e-4,1e-2))'",
    )


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from hpo.config import compose_config

    cfg, _ = compose_config(args.overrides, args.config_dir)
    if args.cfg == "job":
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    from hpo.sweep import run_sweep
    from hpo.sweep.summary import print_summary

    result = run_sweep(cfg)
    print_summary(result, cfg)
    return 0
