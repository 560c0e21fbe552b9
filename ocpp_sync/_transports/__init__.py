"""Websocket transports: websocket-client for stations; for the CSMS, frames read inline with
wsproto by the standalone listener, simple-websocket for websockets another server accepted."""
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
