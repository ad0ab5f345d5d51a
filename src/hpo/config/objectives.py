"""One objective or several: ``metric=val_loss mode=min``, or
``metric=[val_accuracy,latency_ms] mode=[max,min]`` (Hydra list overrides).

The composed config keeps ``metric`` / ``mode`` as the *first* objective's name and
direction (a string each), so everything that follows one metric (the schedulers,
fold racing, early stopping on the Lightning path, the progress line, TensorBoard)
follows the first objective; ``objectives`` lists every objective (empty for one). The
Optuna study gets one direction per objective (hpo.sweep.optuna_bridge) and the export
picks one point of the Pareto front (hpo.export.pareto).

Beside the quality metrics, both engines report the model's cost, ``latency_ms`` and
``param_count`` (hpo.train.cost), so either can be an objective; on the Lightning path
the first objective must be a metric the module logs (it drives early stopping), which
hpo.train.lightning_plan checks with the module's logged metrics, before Ray.

A multi-objective sweep needs a sampler that can rank vectors of values: nsga2, tpe,
gp, random or grid (CMA-ES cannot), through hpo's own bridge (``searcher.bridge=fidelity``).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig

from hpo.config.schema import ObjectiveConfig
from hpo.errors import ConfigError

MODES = ("min", "max")
MULTI_OBJECTIVE_SEARCHERS = ("nsga2", "tpe", "gp", "random", "grid")


def objectives(cfg: Any) -> list[tuple[str, str]]:
    """``[(metric, mode), ...]`` of a validated config, the first one being ``cfg.metric``."""
    listed = cfg.get("objectives") or []
    if listed:
        return [(str(o["metric"]), str(o["mode"])) for o in listed]
    return [(str(cfg["metric"]), str(cfg["mode"]))]


def is_multi_objective(cfg: Any) -> bool:
    return len(objectives(cfg)) > 1


def normalize_objectives(cfg: DictConfig) -> None:
    """Turn a list ``metric`` / ``mode`` into ``objectives`` plus the first objective's
    scalar ``metric`` / ``mode`` (idempotent: a saved config.yaml validates to itself)."""
    metric, mode = cfg.metric, cfg.mode
    if isinstance(metric, ListConfig) or isinstance(mode, ListConfig):
        names = _as_list(metric, "metric")
        modes = _as_list(mode, "mode")
        if len(modes) == 1 and len(names) > 1:
            raise ConfigError(
                f"config key `mode`: metric lists {len(names)} objectives, so mode needs one "
                f"direction each, e.g. mode=[{','.join(['max'] + ['min'] * (len(names) - 1))}]."
            )
        if len(names) != len(modes):
            raise ConfigError(
                f"config key `mode`: {len(modes)} directions for {len(names)} metrics "
                f"({', '.join(names)}); give one direction (min or max) per metric."
            )
        listed = [{"metric": n, "mode": m} for n, m in zip(names, modes)]
    else:
        listed = [dict(o) for o in cfg.get("objectives") or []]
        if listed and (listed[0]["metric"], listed[0]["mode"]) != (metric, mode):
            raise ConfigError(
                f"config key `objectives`: its first objective {listed[0]['metric']} "
                f"({listed[0]['mode']}) is not metric={metric} mode={mode}; set the "
                "objectives with metric=[a,b] mode=[max,min] instead."
            )
    for entry in listed:
        if entry["mode"] not in MODES:
            raise ConfigError(
                f"config key `mode`: must be min or max for each metric, got "
                f"{entry['mode']!r} for {entry['metric']}."
            )
    names = [e["metric"] for e in listed]
    if len(set(names)) != len(names):
        raise ConfigError(f"config key `metric`: an objective is listed twice: {names}.")
    if listed:
        cfg.metric, cfg.mode = listed[0]["metric"], listed[0]["mode"]
    if len(listed) == 1:
        listed = []  # one objective: the plain form
    cfg.objectives = [ObjectiveConfig(**e) for e in listed]
    if listed:
        _check_searcher(cfg)


def _as_list(value: Any, key: str) -> list[str]:
    items = list(value) if isinstance(value, ListConfig) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(
            f"config key `{key}`: expected a name or a list of names, got {value!r} "
            "(e.g. metric=[val_accuracy,latency_ms] mode=[max,min])."
        )
    return [str(v) for v in items]


def _check_searcher(cfg: DictConfig) -> None:
    name = cfg.searcher.name
    if name not in MULTI_OBJECTIVE_SEARCHERS:
        raise ConfigError(
            f"config key `searcher.name`: {name} optimizes one objective, and metric lists "
            f"{len(cfg.objectives)}; use searcher=nsga2 (or "
            f"{', '.join(MULTI_OBJECTIVE_SEARCHERS[1:])})."
        )
    if cfg.searcher.get("bridge", "fidelity") != "fidelity":
        raise ConfigError(
            "config key `searcher.bridge`: a multi-objective sweep runs through hpo's own "
            "study searcher; set searcher.bridge=fidelity."
        )
    if cfg.scheduler.name == "pbt":
        raise ConfigError(
            "config key `scheduler.name`: pbt runs without a search algorithm, so no "
            "multi-objective sampler would see the objectives; use scheduler=asha (or fifo, "
            "hyperband, median)."
        )
