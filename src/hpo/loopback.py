"""The embedded Ray listens on 127.0.0.1 only.

Ray binds its GCS, raylets, workers, the driver's RPC server, its agents and their metrics
endpoints to the node's IP address, and on Linux picks a network-reachable one, so an
embedded Ray listens on every interface with no authentication. Ray's one public switch
for a loopback-only node is the environment variable ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
(``ray._private.ray_constants``): set to ``0``, Ray takes 127.0.0.1 as the node's address
and every server binds there. ``ray.init(_node_ip_address="127.0.0.1")`` does not do it
(private, and Ray replaces a loopback address by a reachable one).

Ray reads the variable when it is imported, so it is set before the first ``import ray``
and only for an embedded Ray: a driver that joins a cluster (``cluster.address``) must
stay reachable from the other nodes. Ray's workers inherit it from the raylet.
"""

from __future__ import annotations

import os
import sys

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_embedded_ray_on_loopback(address: str | None) -> bool:
    """Before Ray is imported: make an embedded Ray (``address`` empty) loopback-only.

    Returns:
        Whether the setting is in force for this process (False when joining a cluster,
        or when Ray was imported before this call without it).
    """
    if address:
        return False
    if "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    return os.environ.get(LOOPBACK_ENV) == "0"
