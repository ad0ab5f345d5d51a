"""Starting, joining and stopping Ray. The CLI's commands and the sweep come here for Ray."""

from __future__ import annotations

import logging
import os

import ray

from hpo.errors import HPOError


def start_ray(cluster_cfg) -> bool:
    """Start an embedded Ray, or join ``cluster.address``. Returns True if this call
    started or joined Ray (and so should shut it down)."""
    if ray.is_initialized():
        return False
    common = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "configure_logging": True,
    }
    try:
        if cluster_cfg.address:
            ray.init(address=cluster_cfg.address, **common)
        else:
            # address="local": always a fresh embedded Ray, never a cluster that
            # `ray start` left running on this machine.
            ray.init(
                address="local",
                num_cpus=cluster_cfg.num_cpus or os.cpu_count(),
                num_gpus=cluster_cfg.num_gpus,
                **common,
            )
    except ConnectionError as exc:
        raise HPOError(
            f"config key `cluster.address`: cannot reach a Ray cluster at "
            f"{cluster_cfg.address!r} ({exc}); start one with `ray start --head` or leave "
            "cluster.address=null for a local Ray."
        ) from exc
    return True


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))
