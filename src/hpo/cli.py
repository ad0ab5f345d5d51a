"""The `hpo` command. Thin: parse, call one function, print."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from hpo.errors import HPOError


def _debug() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("HPO_DEBUG") == "1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="Hyperparameter sweeps for Lightning models on Ray Tune (ASHA + Optuna).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    sweep = sub.add_parser("sweep", help="run a sweep (Hydra overrides after the command)")
    sweep.add_argument(
        "--cfg",
        choices=["job"],
        help="print the composed config (with the search space) and exit",
    )
    sweep.add_argument("--config-dir", help="a conf/ directory to use instead of hpo's own")
    sweep.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=wine 'optim.lr=tag(log, interval(1e-4,1e-2))'")
    return parser


def cmd_sweep(args: argparse.Namespace) -> int:
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


COMMANDS = {"sweep": cmd_sweep}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HPOError as exc:
        if args.debug or _debug():
            traceback.print_exc()
        print(f"hpo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
