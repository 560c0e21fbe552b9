"""Websocket transports. Both ends of our own connections read and write frames inline
(``inline``; wsproto for the rare frames): websocket-client only opens a station's
connection, our listener accepts the CSMS's. simple-websocket carries the websockets
another server accepted (``CSMS.handle`` under Flask and the like)."""
from __future__ import annotations

from ocpp_sync.websocket.base import ConnectionRequest, HandshakeError, Headers, Transport
from ocpp_sync.websocket.client import connect, station_url
from ocpp_sync.websocket.simple import adapt_simple_websocket

__all__ = [
    "Transport",
    "HandshakeError",
    "ConnectionRequest",
    "Headers",
    "connect",
    "station_url",
    "adapt_simple_websocket",
]
