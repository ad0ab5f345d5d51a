"""`hpo report RUN_DIR`: rebuild report.json and report.html from a run directory."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "rebuild RUN_DIR/best/report.json and report.html from the run directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory that `hpo sweep` wrote and exported")


def run(args: argparse.Namespace) -> int:
    from hpo.export.report import REPORT_JSON, write_report

    report, html_path = write_report(args.run_dir)
    print(f"report: {html_path}")
    print(f"        {html_path.parent / REPORT_JSON} ({len(report['warnings'])} warnings)")
    return 0
