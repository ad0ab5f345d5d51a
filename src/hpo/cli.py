"""The `hpo` command. Thin: parse, call one function, print. Subcommands live in
hpo.commands, one module each."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from hpo.commands import COMMAND_MODULES
from hpo.errors import HPOError
from hpo.paths import os_error_line


def _debug() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("HPO_DEBUG") == "1"


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="Hyperparameter sweeps for Lightning models on Ray Tune (ASHA + Optuna).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    runners = {}
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.add_arguments(sub.add_parser(module.NAME, help=module.HELP))
        runners[module.NAME] = module.run
    return parser, runners


def _importable_cwd() -> None:
    """Make the current directory importable, as ``python -m`` does, here and in the Ray
    workers an embedded Ray starts (they inherit PYTHONPATH): a user's ``mypkg`` next to
    where ``hpo`` runs resolves as a ``_target_``."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if cwd not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [cwd, *paths] if p)


def main(argv: Sequence[str] | None = None) -> int:
    _importable_cwd()
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    try:
        code = runners[args.command](args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except HPOError as exc:
        if args.debug or _debug():
            traceback.print_exc()
        print(f"hpo: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `hpo check-data --json | head`: the reader has what it wanted. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off this way
    except OSError as exc:  # one that no command turned into an HPOError
        if args.debug or _debug():
            traceback.print_exc()
        print(f"hpo: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # hpo.sweep.runner.SweepInterrupted says how to resume
        print(f"hpo: interrupted; {exc}" if str(exc) else "hpo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
