"""Per-trial resources against the cluster's nodes: fail at once on a request no node can
ever hold (instead of trials PENDING forever), and work out how many trials run at once.

A trial is one Ray actor, so it must fit on ONE node: eight GPUs spread over two
four-GPU nodes do not make room for a trial that asks for eight. Pure functions of the
nodes' resource dicts (``ray.nodes()``), so they are tested without a cluster.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from hpo.errors import ResourceError

EPS = 1e-9


def _amount(node: dict[str, Any], key: str) -> float:
    return float(node.get(key, 0) or 0)


def trial_slots(node: dict[str, Any], cpus: float, gpus: float) -> int:
    """How many trials asking for ``cpus`` and ``gpus`` fit on one node at once."""
    slots = math.floor(_amount(node, "CPU") / cpus + EPS) if cpus > 0 else math.inf
    if gpus > 0:
        slots = min(slots, math.floor(_amount(node, "GPU") / gpus + EPS))
    return 0 if slots == math.inf else int(slots)


def _impossible(nodes: Sequence[dict[str, Any]], cpus: float, gpus: float) -> str:
    """Why no node fits one trial, naming the config key and the fix."""
    most_gpus = max((_amount(n, "GPU") for n in nodes), default=0.0)
    most_cpus = max((_amount(n, "CPU") for n in nodes), default=0.0)
    described = "; ".join(f"{_amount(n, 'CPU'):g} CPU / {_amount(n, 'GPU'):g} GPU" for n in nodes)
    if gpus > 0 and most_gpus == 0:
        return (
            f"config key `resources.gpus_per_trial`: {gpus:g} GPUs per trial were asked "
            "for, but no node of the Ray cluster has a GPU; set resources.gpus_per_trial=0 "
            "or add GPU nodes."
        )
    if gpus > most_gpus:
        return (
            f"config key `resources.gpus_per_trial`: {gpus:g} GPUs per trial, but no single "
            f"node has more than {most_gpus:g} (a trial runs on one node; nodes: "
            f"{described}); lower it to at most {most_gpus:g}."
        )
    if cpus > most_cpus:
        return (
            f"config key `resources.cpus_per_trial`: {cpus:g} CPUs per trial, but no single "
            f"node has more than {most_cpus:g} (a trial runs on one node; nodes: "
            f"{described}); lower it to at most {most_cpus:g}."
        )
    return (
        f"config keys `resources.cpus_per_trial`={cpus:g} and `resources.gpus_per_trial`="
        f"{gpus:g}: no single node has both (nodes: {described}); lower one of them."
    )


def plan_concurrency(
    nodes: Sequence[dict[str, Any]],
    cpus_per_trial: float,
    gpus_per_trial: float,
    max_concurrent_trials: int | None,
    node_types: Sequence[dict[str, Any]] = (),
) -> int | None:
    """Check that a trial fits on some node; return how many trials to run at once
    (None: no cap).

    Args:
        nodes: the live nodes' resources (``hpo.cluster.node_resources()``).
        cpus_per_trial, gpus_per_trial: the per-trial request (fractional GPUs allowed).
        max_concurrent_trials: the user's cap (None: as many as fit).
        node_types: nodes an autoscaler can still add (``cluster.node_types``); a
            request that fits one of them passes even when no such node runs yet.

    Raises:
        ResourceError: the request can never be satisfied.
    """
    if gpus_per_trial > 1 and not float(gpus_per_trial).is_integer():
        raise ResourceError(
            f"config key `resources.gpus_per_trial`: {gpus_per_trial:g} is neither a "
            "fraction of one GPU nor a whole number of GPUs (Ray shares a GPU, it does not "
            "split several); use e.g. 0.5 or 2."
        )
    fits_now = sum(trial_slots(n, cpus_per_trial, gpus_per_trial) for n in nodes)
    fits_later = any(trial_slots(n, cpus_per_trial, gpus_per_trial) for n in node_types)
    if fits_now == 0 and not fits_later:
        raise ResourceError(_impossible([*nodes, *node_types], cpus_per_trial, gpus_per_trial))
    if node_types:
        # An autoscaler adds nodes only for trials that wait; capping at today's nodes
        # would keep it from ever scaling up.
        return int(max_concurrent_trials) if max_concurrent_trials else None
    if max_concurrent_trials:
        return max(1, min(int(max_concurrent_trials), fits_now))
    return max(1, fits_now)


def local_node(cluster_cfg, count_gpus: bool = True) -> dict[str, float] | None:
    """The one node an embedded Ray (``cluster.address`` null) will have, as
    ``hpo.cluster.start_ray`` starts it; None when hpo joins a cluster (ask Ray then).

    GPUs not fixed by ``cluster.num_gpus`` are the CUDA devices torch sees (the trials
    train with torch, so a GPU torch cannot use is none for them); ``count_gpus=False``
    skips counting them (0) when nothing asks for a GPU.
    """
    if cluster_cfg.get("address"):
        return None
    cpus = cluster_cfg.get("num_cpus") or os.cpu_count() or 1
    gpus = cluster_cfg.get("num_gpus")
    if gpus is None:
        gpus = 0
        if count_gpus:
            import torch  # what the trials import anyway

            gpus = torch.cuda.device_count()
    return {"CPU": float(cpus), "GPU": float(gpus)}


def check_local_resources(cfg) -> None:
    """Before Ray starts and before a run directory exists: a per-trial request that the
    embedded local Ray could never hold fails here, with ``plan_concurrency``'s check and
    message. A joined cluster (``cluster.address``) is checked once Ray runs.

    Raises:
        ResourceError: no trial would ever start.
    """
    gpus = float(cfg.resources.gpus_per_trial)
    node = local_node(cfg.cluster, count_gpus=gpus > 0)
    if node is not None:
        plan_concurrency(
            [node],
            float(cfg.resources.cpus_per_trial),
            gpus,
            cfg.budget.max_concurrent_trials,
            [dict(n) for n in cfg.cluster.get("node_types") or []],
        )
