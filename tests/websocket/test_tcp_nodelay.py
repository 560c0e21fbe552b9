"""The CSMS's sockets send at once (TCP_NODELAY), as websocket-client's already do.

Over TLS a frame goes out as one write per 16 KiB record; with Nagle on, the last record
of a large frame waited for the peer's delayed ACK (about 40 ms per frame on loopback).
"""
from __future__ import annotations

import queue
import socket
from typing import Any

import pytest
from support.raw import WAIT

from ocpp_sync.runtime.listener import WebSocketServer
from ocpp_sync.websocket import connect

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def test_accepted_sockets_have_nagle_off() -> None:
    seen: queue.Queue[int] = queue.Queue()

    def record(transport: Any, station_id: str, request: Any) -> None:
        seen.put(transport._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        transport.receive(timeout=WAIT)

    server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"], on_connection=record)
    server.start()
    try:
        client = connect(f"ws://127.0.0.1:{server.port}/ocpp/CP_1", "CP_1",
                         subprotocols=["ocpp1.6"], timeout=WAIT)
        try:
            assert seen.get(timeout=WAIT) != 0
        finally:
            client.close()
    finally:
        server.stop()
