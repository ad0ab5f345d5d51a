"""`hpo compare RUN_DIR RUN_DIR...`: two or more sweeps side by side."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = (
    "compare two or more sweeps side by side (best scores, test metrics, trials, wall "
    "time) and draw their best-so-far curves (--output PNG or HTML)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (paths or URIs)"
    )
    parser.add_argument(
        "--output",
        "-o",
        help="also write the best-so-far curves over wall time and epochs: a .png, or an "
        ".html page with the table",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    from hpo.errors import HPOError
    from hpo.paths import new_output_file, os_errors
    from hpo.run_state import read_run_info
    from hpo.run_view import comparison_lines, write_comparison

    if len(args.run_dirs) < 2:
        raise HPOError("hpo compare: give two or more run directories to compare.")
    output = None
    if args.output:  # before anything is read: nothing is overwritten unasked
        output = new_output_file(args.output, "--output", args.overwrite)
        if output.suffix.lower() not in (".png", ".html", ".htm"):
            raise HPOError(f"--output {output}: write a .png or an .html file.")
    infos = [read_run_info(where) for where in args.run_dirs]
    print("\n".join(comparison_lines(infos)))
    if output is not None:
        with os_errors(output, "--output"):
            write_comparison(infos, output)
        print(f"curves: {output}")
    return 0
