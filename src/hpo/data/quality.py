"""Data quality checks: each a count with the columns or rows it concerns and what hpo
did about it. They go to ``data_quality.json`` in the run directory and, as a table, to
``hpo check-data``.

The checks that look at the target (leakage, class imbalance) run on the non-test rows
only; the rest look at rows or columns one at a time and never at a label.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpo.data.duplicates import DuplicateDecision
from hpo.data.leakage import (
    SUSPECT_MARGIN,
    SUSPECT_SKILL,
    ColumnScore,
    single_column_scores,
    suspects,
)
from hpo.rundir import DATA_QUALITY

QUALITY_FILE = DATA_QUALITY
LISTED_ROWS = 20  # row numbers kept per check (the count is always complete)
IMBALANCE_WARN_RATIO = 3.0


@dataclass
class Check:
    """One check's outcome. ``status``: ``ok`` (nothing found), ``fixed`` (found and
    handled), ``warning`` (found; look at it). ``columns`` maps each affected column to
    its count or finding; ``rows`` lists the first affected row numbers."""

    name: str
    title: str
    count: int
    unit: str
    status: str
    action: str
    detail: str = ""
    columns: dict[str, Any] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)  # the leakage check's

    def found(self) -> str:
        """``count unit``, the unit singular for one."""
        if not self.count:
            return "0"
        unit = self.unit[:-1] if self.count == 1 and self.unit.endswith("s") else self.unit
        return f"{self.count:g} {unit}"

    def affected(self, width: int = 48) -> str:
        """A short text of what is affected, for the table."""
        if self.columns:
            parts = [_column_text(name, value) for name, value in self.columns.items()]
        elif self.rows:
            parts = [f"row {r}" for r in self.rows]
        else:
            return "-"
        text = ", ".join(parts)
        return text if len(text) <= width else text[: width - 3].rstrip(", ") + "..."


def column_label(name: Any) -> str:
    return str(name) if str(name).strip() else '""'  # pandas' saved index has no name


def _column_text(name: Any, value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("count", len(value))
    elif isinstance(value, float):
        value = f"{value:.4g}"
    text = str(value)
    if len(text) > 16:  # a reason: the detail and the JSON have it
        return column_label(name)
    return f"{column_label(name)} ({text})"


def _status(count: int, found: str) -> str:
    return found if count else "ok"


def _rows(positions: np.ndarray) -> list[int]:
    return [int(p) for p in positions[:LISTED_ROWS]]


def missing_values(missing: dict[str, int], target_missing: int, target: str) -> Check:
    columns = {c: n for c, n in missing.items() if n}
    if target_missing:
        columns[f"{target} (target)"] = target_missing
    return Check(
        "missing_values",
        "missing values",
        sum(columns.values()),
        "cells",
        _status(len(columns), "fixed"),
        "imputed per fold",
        "Empty cells and the data.na_values spellings. Features are imputed inside each "
        "fold from its train part (numbers: median plus a missing-indicator column; "
        "categories: a level of their own, `(missing)`); rows without a target are dropped.",
        columns,
    )


def stray_strings(found: dict[str, Any]) -> Check:
    return Check(
        "stray_strings",
        "stray strings",
        sum(v["count"] for v in found.values()),
        "cells",
        _status(len(found), "fixed"),
        "coerced to numbers",
        "Text in numeric columns (at most data.max_stray_fraction of a column's values); "
        "the strays become missing values. `values` lists them.",
        found,
    )


def inconsistent_categories(found: dict[str, Any]) -> Check:
    return Check(
        "inconsistent_categories",
        "category spellings",
        sum(v["count"] for v in found.values()),
        "cells",
        _status(len(found), "fixed"),
        "normalized",
        "One category written several ways (case, surrounding spaces); the count is the "
        "cells not in their most frequent spelling. Features: spaces stripped and case "
        "folded (data.normalize_categories=false keeps them as written); the target: each "
        "label's most frequent spelling.",
        found,
    )


def dropped_columns(
    drops: dict[str, dict[str, Any]], drop_ids: bool, as_published: bool = False
) -> list[Check]:
    empty, constant, ids = drops["empty_columns"], drops["constant_columns"], drops["id_columns"]
    drop = "kept (built-in data)" if as_published else "dropped"
    published = "Built-in datasets are used as published: nothing is dropped. "
    found = "warning" if as_published else "fixed"
    return [
        Check(
            "empty_columns",
            "all-empty columns",
            len(empty),
            "columns",
            _status(len(empty), found),
            drop,
            (published if as_published else "") + "Columns without a single value.",
            empty,
        ),
        Check(
            "constant_columns",
            "constant columns",
            len(constant),
            "columns",
            _status(len(constant), found),
            drop,
            (published if as_published else "") + "Columns with one value in every row.",
            constant,
        ),
        Check(
            "id_columns",
            "ID-like columns",
            len(ids),
            "columns",
            _status(len(ids), "warning"),
            "dropped" if drop_ids else "kept",
            "Unique per row (a row number, a customer id): no signal, or the row order. "
            + (
                "Dropped; data.drop_id_columns=false keeps them."
                if drop_ids
                else published
                if as_published
                else "Kept (data.drop_id_columns=false)."
            ),
            ids,
        ),
    ]


def missing_target(positions: np.ndarray) -> Check:
    return Check(
        "missing_target",
        "rows without target",
        len(positions),
        "rows",
        _status(len(positions), "fixed"),
        "dropped",
        "Rows whose target is missing, dropped before the split.",
        rows=_rows(positions),
    )


def duplicate_rows(positions: np.ndarray, decision: DuplicateDecision) -> Check:
    """Exact duplicates and what the rule (hpo.data.duplicates) decided, with why."""
    found = len(positions)
    status = "ok" if not found else "fixed" if decision.drop else "warning"
    share = f" ({found / decision.rows:.1%} of {decision.rows:,} rows)" if found else ""
    return Check(
        "duplicate_rows",
        "duplicate rows",
        found,
        "rows",
        status,
        ("dropped" if decision.drop else "kept") if found else "checked",
        "Rows identical to an earlier row in the target and every column used (ID-like, "
        "constant and empty columns aside)"
        + share
        + (f"; {decision.reason}" if decision.reason else "")
        + (". The first copy stays." if decision.drop else "."),
        rows=_rows(positions),
    )


def row_hashes(features: pd.DataFrame, target=None) -> np.ndarray:
    """One 64-bit hash per row (of the features, and the target if given): comparing
    hashes is much faster than pandas' column-by-column ``duplicated`` on a million rows;
    a collision among a million rows has a chance of about 1e-8."""
    hashes = pd.util.hash_pandas_object(features, index=False).to_numpy()
    if target is not None:
        labels = pd.util.hash_pandas_object(pd.Series(np.asarray(target)), index=False)
        hashes = hashes * np.uint64(1_000_003) ^ labels.to_numpy()
    return hashes


def duplicated_rows(features: pd.DataFrame, target) -> np.ndarray:
    """True for each row identical (features and target) to an earlier row."""
    return pd.Series(row_hashes(features, target)).duplicated().to_numpy()


def duplicates_across_split(
    features: pd.DataFrame,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    positions: np.ndarray,
) -> Check:
    """Test rows whose feature values also appear among the non-test rows."""
    hashes = row_hashes(features)
    labelled = row_hashes(features, y)  # features and target together
    same_features = pd.Series(hashes[test_idx]).isin(hashes[train_idx]).to_numpy()
    same_row = int(pd.Series(labelled[test_idx]).isin(labelled[train_idx]).sum())
    count = int(same_features.sum())
    return Check(
        "duplicates_across_split",
        "duplicates across split",
        count,
        "test rows",
        _status(count, "warning"),
        "reported",
        f"Test rows whose feature values also occur in the non-test rows ({same_row} with "
        f"the same target, {count - same_row} with another): the test score is optimistic "
        "for them.",
        rows=_rows(positions[test_idx][same_features]),
    )


RANKED_COLUMNS = 30  # columns of the leakage ranking kept in data_quality.json


def leakage(features: pd.DataFrame, y: np.ndarray, task: str, threshold: float, seed: int) -> Check:
    """Every column ranked by how well it alone predicts the target; the ones at or over
    ``threshold`` are flagged, the ones that stand out (hpo.data.leakage.suspects) are
    suspects. Both are listed with their scores and kept."""
    scores = single_column_scores(features, y, task, seed)
    flagged = [s for s in scores if s.score >= threshold]
    standing_out = [s for s in suspects(scores) if s not in flagged]
    measure = "balanced accuracy" if task == "classification" else "R^2"
    listed = {
        **{s.column: f"{s.score:.3f}" for s in flagged},
        **{s.column: _suspect_text(s) for s in standing_out},
    }
    found = len(listed)
    return Check(
        "leakage",
        "probable leakage",
        found,
        "columns",
        _status(found, "warning"),
        "flagged, kept",
        f"Every column is scored alone on held-out non-test rows ({measure}"
        + (" or |Spearman correlation|" if task == "regression" else " and ROC-AUC")
        + f"). Flagged: a score >= data.leakage_threshold={threshold:g}. Suspect: a column "
        f"that stands out (skill >= {SUSPECT_SKILL:g}, 0 = chance and 1 = perfect, and "
        f">= {SUSPECT_MARGIN:g}x the next best column's), as a value recorded after the "
        "outcome does. Not dropped: if such a column is not known when you predict, or is "
        "derived from the target, drop it with data.drop_columns=[COLUMN].",
        listed,
        ranking=[_ranked(s, s in flagged, s in standing_out) for s in scores[:RANKED_COLUMNS]],
    )


def _suspect_text(score: ColumnScore) -> str:
    """Short enough for the table's affected column: ``suspect AUC 0.78``."""
    if score.auc is not None:
        return f"suspect AUC {score.auc:.2f}"
    return f"suspect {score.score:.2f}"


def _ranked(score: ColumnScore, flagged: bool, suspect: bool) -> dict[str, Any]:
    return {
        "column": str(score.column),
        "score": round(score.score, 4),
        "auc": None if score.auc is None else round(score.auc, 4),
        "skill": round(score.skill, 4),
        "verdict": "flagged" if flagged else "suspect" if suspect else "",
    }


def class_imbalance(y: np.ndarray, classes: list) -> Check:
    counts = np.bincount(y, minlength=len(classes))
    ratio = float(counts.max() / max(counts.min(), 1))
    imbalanced = ratio >= IMBALANCE_WARN_RATIO
    return Check(
        "class_imbalance",
        "class imbalance",
        round(ratio, 2),
        "largest/smallest",
        "warning" if imbalanced else "ok",
        "stratified",
        f"Rows per class; the largest class has {ratio:.1f}x the rows of the smallest. The "
        "test split and folds are stratified. "
        + (
            "Accuracy flatters the majority class: watch val_f1_macro "
            "(metric=val_f1_macro mode=max)."
            if imbalanced
            else ""
        ),
        {str(c): int(n) for c, n in zip(classes, counts)},
    )


@dataclass
class QualityReport:
    """What ``data_quality.json`` holds: where the data came from, what it became, and
    every check."""

    source: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [
            f"{c.title}: {c.found()}: {c.affected(120)}. {c.detail}"
            for c in self.checks
            if c.status == "warning"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "result": self.result,
            "checks": [asdict(c) for c in self.checks],
            "warnings": self.warnings,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / QUALITY_FILE
        path.write_text(self.to_json() + "\n")
        return path

    def table_lines(self) -> list[str]:
        """The checks as a fixed-width table, one row per check."""
        header = ("check", "found", "status", "action", "affected")
        rows = [(c.title, c.found(), c.status, c.action, c.affected()) for c in self.checks]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        lines = []
        for row in [header, tuple("-" * w for w in widths) + ("-" * 8,), *rows]:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join([*cells, row[4]]).rstrip())
        return lines


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def report_quality(prepared, run_dir: str | Path, stream=sys.stdout) -> None:
    """Write data_quality.json into the run directory and print its warnings."""
    report = getattr(prepared, "quality", None)
    if report is None:
        return
    if isinstance(report, dict):  # a DataModule's own findings (data=images)
        report_module_quality(report, run_dir, stream)
        return
    path = report.write(run_dir)
    if stream is not None:
        for line in report.warnings:
            print(f"hpo: data warning: {line}", file=stream)
        if report.warnings:
            print(f"hpo: every check is in {path}", file=stream, flush=True)


def report_module_quality(findings: dict | None, run_dir: str | Path, stream=sys.stdout) -> None:
    """A DataModule's own findings (its ``hpo_dataset()['quality']``, e.g. data=images)
    into data_quality.json, its ``warnings`` printed as the tables' are."""
    if not findings:
        return
    path = Path(run_dir) / QUALITY_FILE
    path.write_text(json.dumps(findings, indent=2, default=_json_default) + "\n")
    if stream is not None:
        for line in findings.get("warnings", []):
            print(f"hpo: data warning: {line}", file=stream)
        if findings.get("warnings"):
            print(f"hpo: every check is in {path}", file=stream, flush=True)
