"""``hpo status`` and ``hpo compare`` as text (rich tables, plain off a terminal) and as
a figure or an HTML page: what hpo.run_state read, shown.

Layering: beside hpo.run_state (no Ray, no torch; matplotlib only for the figure).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo.errors import HPOError
from hpo.run_state import STATE_RUNNING, RunInfo
from hpo.rundir import COMPLETED, FAILED, RUNNING, STOPPED

TABLE_WIDTH = 1000  # text for a terminal or a log: columns at their natural width
ERROR_CHARS = 60


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def render_text(renderable) -> str:
    """A rich renderable as text (with no colour codes unless stdout is a terminal)."""
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=TABLE_WIDTH, soft_wrap=False).print(renderable, crop=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def progress_text(info: RunInfo) -> str:
    c = info.counts
    budget = info.budget if info.budget is not None else "time budget"
    unfinished = f", {c[RUNNING]} unfinished" if c[RUNNING] else ""
    return (
        f"{info.ended}/{budget} trials ended: {c[COMPLETED]} completed, {c[STOPPED]} "
        f"stopped by {info.scheduler}, {c[FAILED]} failed{unfinished}; "
        f"{info.epochs} epochs trained, wall {_duration(info.wall_s)}"
    )


def state_text(info: RunInfo) -> str:
    if info.state == STATE_RUNNING:
        h = info.holder or {}
        return (
            f"running (`{h.get('command', 'hpo')}`, pid {h.get('pid', '?')} on "
            f"{h.get('host', '?')}, since {h.get('started', '?')})"
        )
    if info.state == "finished":
        return "finished, exported to best/" if info.exported else "finished, not exported"
    return info.state


def _short_state(info: RunInfo) -> str:
    if info.state == "finished" and not info.exported:
        return "finished (not exported)"
    return info.state


def trials_table(info: RunInfo):
    from rich import box
    from rich.table import Table

    keys = sorted({k for t in info.trials.values() for k in t.params})
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("#", "trial", "status", "epochs", f"{info.metric} last", "best", "at epoch"):
        table.add_column(name, justify="left" if name in ("trial", "status") else "right")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("error")
    for t in info.trials.values():
        error = (t.error or "")[:ERROR_CHARS]
        table.add_row(
            str(t.index), t.trial_id, t.status, str(t.epoch), _fmt(t.value), _fmt(t.best),
            _fmt(t.best_epoch), *(_fmt(t.params.get(k)) for k in keys), error,
        )  # fmt: skip
    return table


def status_lines(info: RunInfo) -> list[str]:
    """``hpo status RUN_DIR``'s output."""
    lines = [
        f"run directory: {info.run.display}",
        f"state: {state_text(info)}",
        f"sweep: {info.name}, searcher={info.searcher}, scheduler={info.scheduler}, "
        f"metric {info.metric} ({info.mode})",
        f"progress: {progress_text(info)}",
    ]
    best = info.best
    if best is None:
        lines.append("best so far: - (no trial has reported a result)")
    else:
        lines.append(
            f"best so far: {info.metric} {best.best:.4f}, trial {best.trial_id} (epoch "
            f"{best.best_epoch}, {best.status})"
        )
        lines += [f"  {key} = {_fmt(value)}" for key, value in best.params.items()]
    test = info.test_metrics()
    if test:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items())
        lines.append(f"test (best/report.json): {shown}")
    lines += [f"note: {note}" for note in info.notes]
    if info.trials:
        lines += ["trials:", render_text(trials_table(info))]
    if info.resume_command:
        lines.append(f"to finish it: {info.resume_command}")
    return lines


def comparison_rows(infos: Sequence[RunInfo]) -> list[tuple[str, list[str]]]:
    """(quantity, one value per run): the side-by-side table of ``hpo compare``."""
    rows = [
        ("state", [_short_state(i) for i in infos]),
        ("searcher", [i.searcher for i in infos]),
        ("scheduler", [i.scheduler for i in infos]),
        ("trials ended / budget", [f"{i.ended}/{_fmt(i.budget)}" for i in infos]),
        ("completed / stopped / failed", [
            f"{i.counts[COMPLETED]} / {i.counts[STOPPED]} / {i.counts[FAILED]}" for i in infos
        ]),
        ("best CV score", [
            f"{i.metric} {i.best.best:.4f}" if i.best else "-" for i in infos
        ]),
        ("best trial", [
            f"{i.best.trial_id} (epoch {i.best.best_epoch})" if i.best else "-" for i in infos
        ]),
        ("epochs trained", [str(i.epochs) for i in infos]),
        ("wall time", [_duration(i.wall_s) for i in infos]),
    ]  # fmt: skip
    names = []
    for info in infos:
        names += [k for k in info.test_metrics() if k not in names]
    for name in names:
        rows.append((f"test {name}", [_fmt(i.test_metrics().get(name)) for i in infos]))
    return rows


def run_labels(infos: Sequence[RunInfo]) -> list[str]:
    """Short names for the runs: their folder names, made unique."""
    labels = []
    for n, info in enumerate(infos, 1):
        label = info.run.root.name if not info.run.uri else info.run.uri.rsplit("/", 1)[-1]
        labels.append(label if label not in labels else f"{label} ({n})")
    return labels


def comparison_table(infos: Sequence[RunInfo]):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("")
    for label in run_labels(infos):
        table.add_column(label, justify="right")
    for name, values in comparison_rows(infos):
        table.add_row(name, *values)
    return table


def comparison_lines(infos: Sequence[RunInfo]) -> list[str]:
    lines = [f"run {label}: {i.run.display}" for label, i in zip(run_labels(infos), infos)]
    metrics = {(i.metric, i.mode) for i in infos}
    if len(metrics) > 1:
        lines.append(
            "note: the runs optimise different metrics ("
            + ", ".join(f"{m} ({mode})" for m, mode in sorted(metrics))
            + "): their best scores are not comparable."
        )
    return [*lines, render_text(comparison_table(infos))]


def comparison_figure(infos: Sequence[RunInfo]):
    """Best so far over wall time and over the epochs trained, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_epochs) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, info in zip(run_labels(infos), infos):
        curve = info.curve
        if not curve.best:
            continue
        finite = [(s, b) for s, b in zip(curve.seconds, curve.best) if not math.isnan(s)]
        end_s = info.wall_s or (finite[-1][0] if finite else 0)
        if finite:
            xs, ys = zip(*finite)
            by_time.step([*xs, end_s], [*ys, ys[-1]], where="post", label=label)
        by_epochs.step(
            [*curve.epochs, info.epochs], [*curve.best, curve.best[-1]], where="post", label=label
        )
    metric = " / ".join(sorted({i.metric for i in infos}))
    for axis, xlabel in ((by_time, "wall time (s)"), (by_epochs, "epochs trained (all trials)")):
        axis.set_xlabel(xlabel)
        axis.set_ylabel(f"best {metric} so far")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    by_time.set_title("best so far over wall time")
    by_epochs.set_title("best so far over epochs")
    fig.tight_layout()
    return fig


def _html_page(infos: Sequence[RunInfo], png: bytes) -> str:
    labels = run_labels(infos)
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in values)
        + "</tr>"
        for name, values in comparison_rows(infos)
    )
    runs = "".join(
        f"<li><b>{html.escape(label)}</b>: {html.escape(i.run.display)}</li>"
        for label, i in zip(labels, infos)
    )
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hpo compare</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head>
<body><h1>hpo compare</h1><ul>{runs}</ul>
<table><tr><th></th>{head}</tr>{body}</table>
<h2>Best so far</h2><img alt="best-so-far curves" src="data:image/png;base64,{image}">
</body></html>
"""


def write_comparison(infos: Sequence[RunInfo], path: Path) -> Path:
    """The figure as a PNG (``.png``) or a self-contained HTML page (``.html``)."""
    import matplotlib.pyplot as plt

    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise HPOError(f"--output {path}: write a .png or an .html file.")
    fig = comparison_figure(infos)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    if suffix == ".png":
        path.write_bytes(buffer.getvalue())
    else:
        path.write_text(_html_page(infos, buffer.getvalue()))
    return path
