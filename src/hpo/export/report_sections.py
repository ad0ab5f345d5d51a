"""Sections of report.html about what the model stands on: the data checks (every check,
its count and its action, and the leakage ranking)."""

from __future__ import annotations

from html import escape
from typing import Any

from hpo.export.html_parts import fmt, table

LISTED = 8  # columns or rows named per check in the table


def _found(check: dict[str, Any]) -> str:
    count, unit = check["count"], check["unit"]
    if not count:
        return "0"
    return f"{count:g} {unit[:-1] if count == 1 and unit.endswith('s') else unit}"


def _affected(check: dict[str, Any]) -> str:
    columns = list(check["columns"].items())
    if columns:
        text = ", ".join(f"{k} ({v})" for k, v in columns[:LISTED])
        return text + (f", … ({len(columns)} in all)" if len(columns) > LISTED else "")
    rows = check["rows"]
    if rows:
        more = ", …" if check["count"] > len(rows[:LISTED]) else ""
        return "rows " + ", ".join(str(r) for r in rows[:LISTED]) + more
    return "–"


def _status(status: str) -> str:
    css = {"ok": "ok", "warning": "bad"}.get(status, "")
    return f"<span class={css}>{escape(status)}</span>" if css else escape(status)


def data_quality_section(report: dict[str, Any]) -> str:
    """Every data check with its count, status and action; the leakage ranking."""
    quality = report.get("data_quality")
    if not quality:
        return (
            "<h2>Data quality</h2><p class=muted>This run directory has no "
            "data_quality.json (written by hpo sweep before the trials).</p>"
        )
    source, result = quality["source"], quality["result"]
    where = source.get("path") or source["name"]
    head = (
        f"<p>{escape(str(where))} ({escape(source['source'])}): {fmt(source['rows'])} rows "
        f"read, {fmt(result.get('rows'))} used; dropped columns: "
        f"{escape(', '.join(map(str, result.get('dropped_columns') or [])) or 'none')}.</p>"
    )
    rows = "".join(
        "<tr>"
        f"<td>{escape(c['title'])}</td><td>{escape(_found(c))}</td><td>{_status(c['status'])}"
        f"</td><td>{escape(c['action'])}</td><td>{escape(_affected(c))}</td>"
        f"<td class=muted style='text-align:left'>{escape(c['detail'])}</td></tr>"
        for c in quality["checks"]
    )
    checks = (
        "<table><tr><th>check</th><th>found</th><th>status</th><th>action</th>"
        f"<th>affected</th><th>what it means</th></tr>{rows}</table>"
    )
    return "<h2>Data quality</h2>" + head + checks + _leakage_ranking(quality["checks"])


def _leakage_ranking(checks: list[dict[str, Any]]) -> str:
    leakage = next((c for c in checks if c["name"] == "leakage"), None)
    ranking = (leakage or {}).get("ranking") or []
    if not ranking:
        return ""
    rows = [[r["column"], r["score"], r["auc"], r["skill"], r["verdict"] or ""] for r in ranking]
    return (
        "<h3>Leakage: every column alone against the target</h3>"
        "<p class=muted>Scored on held-out non-test rows, best first. skill: 0 at chance, "
        "1 perfect. A flagged or suspect column is kept: drop it with "
        "<code>data.drop_columns=[COLUMN]</code> if it is recorded after the outcome or "
        "not known when you predict.</p>"
        + table(["column", "score", "ROC-AUC", "skill", "verdict"], rows)
    )


def target_transform_paragraph(report: dict[str, Any]) -> str:
    """Regression: the target's transform, why it was chosen, and where it is undone."""
    transform = report.get("target_transform")
    if not transform:
        return ""
    skew = transform.get("skewness")
    return (
        f"<p>Target transform <b>{escape(transform['name'])}</b> "
        f"(<code>data.target_transform={escape(transform['setting'])}</code>): "
        f"{escape(transform['reason'])}"
        + (f"; skewness of the non-test target {fmt(skew)}" if skew is not None else "")
        + f". Undone {escape(transform['inverted'])}; every metric here is in the target's "
        "units (the loss: MSE of the standardized transformed target).</p>"
    )
