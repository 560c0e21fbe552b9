"""Websocket transports: websocket-client for stations, simple-websocket for the CSMS."""
from __future__ import annotations

from .base import ConnectionRequest, HandshakeError, Headers, Transport
from .client import connect, station_url
from .server import WebSocketServer, adapt_simple_websocket

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
