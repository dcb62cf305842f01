"""Starting or joining Ray, shared by the search's build executor and the device pool.

One process holds one Ray connection: when both are used (``edgeport search --executor ray --pool ...``)
the first starts it with everything both need and the second reuses it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from edgeport.errors import ConfigError

INSTALL = "pip install 'edgeport[ray]'"


def import_ray(what: str) -> Any:
    """The ray module, or exit 2 naming the install command (``what``: the option that needs it)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"{what} needs Ray: {INSTALL}") from exc
    return ray


def check_reachable(address: str) -> None:
    """Fail fast with a clear message instead of Ray's long retry loop on a dead address."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not host:port (or 'auto', or ray://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"Ray address {address!r} is unreachable ({exc.strerror or exc})") from exc


def start_or_join(ray: Any, address: str | None, num_cpus: int, resources: Mapping[str, float] = {}) -> bool:
    """Connect this process to Ray: the cluster at ``address``, else a new local instance with ``num_cpus``
    and the custom ``resources``. True when this call connected (the caller then calls ray.shutdown(), which
    stops a local instance and only disconnects from a cluster); False when the process was connected."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto"):
        check_reachable(address)
    os.environ.setdefault("RAY_ACCEPT_CLUSTER_MODE_FOR_LOCAL", "1")
    try:
        if address is None:
            ray.init(
                num_cpus=num_cpus,
                resources=dict(resources),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                # Ray starts its workers at nice 15; a build or measurement here is the command's own work, and at
                # nice 15 anything else on the machine starved it (a search's Ray test took over 10 minutes
                # beside other work instead of 2).
                _system_config={"worker_niceness": 0},
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... for a bad cluster
        raise ConfigError(f"cannot start or join Ray at {address or 'a local instance'}: {exc}") from exc
    return True
