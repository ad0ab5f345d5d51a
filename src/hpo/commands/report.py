"""`hpo report RUN_DIR`: rebuild report.json and report.html from a run directory."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "rebuild RUN_DIR/best/report.json and report.html from the run directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory that `hpo sweep` wrote and exported")


def run(args: argparse.Namespace) -> int:
    from hpo.rundir import RunDirectory

    run_dir = RunDirectory.open(args.run_dir)  # a wrong path: its error before the imports
    from hpo.export.lightning_predict import is_lightning_export
    from hpo.export.lightning_report import write_lightning_report
    from hpo.export.report import REPORT_JSON, write_report

    lightning = is_lightning_export(run_dir.best)
    report, html_path = (write_lightning_report if lightning else write_report)(args.run_dir)
    print(f"report: {html_path}")
    print(f"        {html_path.parent / REPORT_JSON} ({len(report['warnings'])} warnings)")
    return 0
