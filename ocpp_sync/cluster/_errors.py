"""Errors a cluster call can end with, besides the core's CallError and CallTimeout."""
from __future__ import annotations

from ocpp_sync.errors import ConnectionClosed, OCPPError

__all__ = ["StationNotConnected", "ClusterUnavailable"]


class StationNotConnected(ConnectionClosed):
    """No live node holds a connection to the station, or it was lost during the call.

    A ConnectionClosed (so also a ConnectionError): callers that already
    handle a dropped connection handle this the same way.
    """

    code = "StationNotConnected"


class ClusterUnavailable(OCPPError, ConnectionError):
    """Redis cannot be reached, so a station on another node cannot be called."""

    code = "ClusterUnavailable"
