"""Run several CSMS processes as one: any of them, or any web worker, can call any station.

Needs the ``cluster`` extra (``pip install 'ocpp_sync[cluster]'``) and a Redis
server. See ``examples/cluster/`` for a two-node setup.
"""
from __future__ import annotations

try:
    import redis  # noqa: F401  (the optional dependency; say how to get it)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("ocpp_sync.cluster needs the redis client: pip install 'ocpp_sync[cluster]'") from exc

from ocpp_sync.cluster._cluster import Cluster, Location
from ocpp_sync.cluster._events import Event, EventConsumer
from ocpp_sync.errors import ClusterUnavailable, StationNotConnected

__all__ = ["Cluster", "Location", "Event", "EventConsumer", "StationNotConnected",
           "ClusterUnavailable"]

# Defined in private modules; shown, and pickled, as ocpp_sync.cluster.X. Not Event: an attrs
# class with string annotations, which typing.get_type_hints (and cattrs) resolve in the
# namespace of the class's __module__, where Any would then be missing.
for _name in ("Cluster", "Location", "EventConsumer"):
    globals()[_name].__module__ = __name__
del _name
