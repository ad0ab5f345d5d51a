"""The summary `hpo sweep` prints at the end."""

from __future__ import annotations

import sys

from hpo.sweep.runner import SweepResult


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_lines(result: SweepResult, cfg) -> list[str]:
    # a URI run directory (s3://...) is staged locally; name the URI
    lines = [f"run directory: {result.extra.get('storage', result.run_dir)}"]
    c = result.counts
    total = sum(c.values())
    lines.append(
        f"trials: {total} ({c.get('completed', 0)} completed, {c.get('stopped', 0)} stopped by "
        f"{cfg.scheduler.name}, {c.get('failed', 0)} failed) in {result.wall_s:.0f}s"
    )
    best = result.best
    if best is None:
        lines.append("no trial produced a result")
        return lines
    lines.append(f"best trial: {best['trial_id']} (epoch {best['epoch']}, {best['status']})")
    for key, value in best["params"].items():
        lines.append(f"  {key} = {_fmt(value)}")
    folds = len(best.get("fold_scores") or [])
    std = best.get("cv_std")
    lines.append(
        f"cross-validation {best['metric']}: {best['cv_mean']:.4f} ± {std or 0:.4f} "
        f"over {folds} folds"
    )
    for name, value in best["metrics"].items():
        if name.startswith("val_") and not name.endswith("_std") and name != best["metric"]:
            spread = best["metrics"].get(f"{name}_std")
            lines.append(f"  {name}: {value:.4f} ± {spread or 0:.4f}")
    return lines


def print_summary(result: SweepResult, cfg, stream=sys.stdout) -> None:
    print("\n".join(summary_lines(result, cfg)), file=stream, flush=True)
