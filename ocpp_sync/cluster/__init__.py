"""Run several CSMS processes as one: any of them, or any web worker, can call any station.

Needs the ``cluster`` extra (``pip install 'ocpp_sync[cluster]'``) and a Redis
server. See ``examples/cluster/`` for a two-node setup.
"""
from __future__ import annotations

from ._cluster import Cluster, Location
from ._errors import ClusterUnavailable, StationNotConnected
from ._events import Event, EventConsumer

__all__ = ["Cluster", "Location", "Event", "EventConsumer", "StationNotConnected",
           "ClusterUnavailable"]
