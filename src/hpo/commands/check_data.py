"""`hpo check-data [overrides]`: load, clean and check the data as a sweep would, and
print what the checks found as a table. No Ray, no training."""

from __future__ import annotations

import argparse

NAME = "check-data"
HELP = "check the data a sweep would use and print what is wrong with it (Hydra overrides)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", help="a conf/ directory to use instead of hpo's own")
    parser.add_argument(
        "--json", action="store_true", help="print data_quality.json's content instead"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, e.g. data=csv data.path=customers.csv data.target=churned",
    )


def summary_lines(prepared) -> list[str]:
    """The lines above the table: source, task, what the cleaning left."""
    from hpo.data.quality import column_label

    report = prepared.quality
    source, result = report.source, report.result
    where = source.get("path") or source["name"]
    lines = [
        f"data: {where} ({source['source']}): {source['rows']} rows, {source['columns']} "
        f"columns; target `{source['target']}`"
    ]
    how = "inferred; data.task=... overrides" if result["task_inferred"] else "from data.task"
    task = f"task: {result['task']} ({how})"
    if result["classes"] is not None:
        shown = ", ".join(repr(c) for c in result["classes"][:10])
        more = ", ..." if len(result["classes"]) > 10 else ""
        task += f", {len(result['classes'])} classes: {shown}{more}"
    lines.append(task)
    cv = result["cv"]
    dropped = [column_label(c) for c in result["dropped_columns"]]
    grouped = f", groups from `{result['group_column']}`" if result["group_column"] else ""
    lines.append(
        f"features: {len(result['numeric_columns'])} numeric, "
        f"{len(result['categorical_columns'])} categorical"
        + (f"; dropped {', '.join(dropped)}" if dropped else "")
    )
    lines.append(
        f"rows: {result['rows']} used; {result['test_rows']} held out for the test, "
        f"{result['train_rows']} for {cv['folds']}-fold CV ({cv['strategy']}{grouped})"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    from hpo.config import compose_config
    from hpo.data.locations import check_configured_file

    cfg, _ = compose_config(args.overrides, args.config_dir)
    check_configured_file(cfg)  # before pandas, pyarrow and scikit-learn load
    from hpo.data.prepare import inspect_data

    prepared = inspect_data(cfg)
    report = prepared.quality
    if args.json:
        print(report.to_json())
        return 0
    print("\n".join(summary_lines(prepared)))
    print()
    print("\n".join(report.table_lines()))
    if report.warnings:
        print()
        for line in report.warnings:
            print(f"warning: {line}")
    print("\nrows are numbered from 0, the first data row after the header.")
    return 0
