"""Websocket transports. Both ends of our own connections read and write frames inline
(``inline``; wsproto for the rare frames): websocket-client only opens a station's
connection, our listener accepts the CSMS's. simple-websocket carries the websockets
another server accepted (``CSMS.handle`` under Flask and the like)."""
from __future__ import annotations

from .base import ConnectionRequest, HandshakeError, Headers, Transport
from .client import connect, station_url
from .server import WebSocketServer
from .simple import adapt_simple_websocket

__all__ = [
    "Transport",
    "HandshakeError",
    "ConnectionRequest",
    "Headers",
    "connect",
    "station_url",
    "WebSocketServer",
    "adapt_simple_websocket",
]
