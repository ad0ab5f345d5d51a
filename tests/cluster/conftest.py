"""A real two-node Ray cluster (token auth on) for the cluster tests, started once per module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from local_cluster import PYTHONPATH, LocalRayCluster


@pytest.fixture(scope="module")
def two_nodes():
    """Head + one worker node, 1 CPU each, dashboard on 127.0.0.1, RAY_AUTH_MODE=token.

    Every process it starts (nodes, workers, job drivers) is killed afterwards, even when
    the tests fail; nothing else on the machine is touched."""
    env = {
        # the job's `python -m hpo` and the workers import this checkout
        "PYTHONPATH": PYTHONPATH,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    with LocalRayCluster(cpus_per_node=1, nodes=2, env=env) as cluster:
        yield cluster
