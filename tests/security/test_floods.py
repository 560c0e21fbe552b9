"""A hostile peer that floods must cost a bounded amount, on either side of the link (issue 16).

Both attacks run on loopback against the real CSMS and the real ChargePoint, each bounded
in count (calls sent, bytes streamed) and in time (every wait has a deadline).
"""
from __future__ import annotations

import base64
import hashlib
import select
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from support.raw import WAIT, wait_until

import ocpp_sync
from ocpp_sync import v16
from ocpp_sync.protocol.rpc import MAX_QUEUED_PEER_BYTES, MAX_UNANSWERED_PEER_CALLS
from ocpp_sync.runtime.connection import Connection
from ocpp_sync.websocket.base import MAX_MESSAGE_SIZE

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

# -- a station that sends calls and never reads the answers ------------------------------------

FLOOD_CALLS = 200_000       # the most the station sends: about 14 MB, all of it may fit in buffers
ANSWER_BYTES = 64 * 1024    # each answer this big fills the station's small buffer in a few


class Peak:
    """The most the connection held of the peer's calls, seen each time one was queued."""

    def __init__(self) -> None:
        self.queued = 0       # calls waiting for the handling role
        self.unanswered = 0   # calls taken in and not answered yet (the one in hand included)
        self.bytes = 0

    def record(self, connection: Any) -> None:
        self.queued = max(self.queued, len(connection._work))
        self.unanswered = max(self.unanswered, len(connection._rpc._handling))
        self.bytes = max(self.bytes, connection._rpc._handling_bytes)


@pytest.fixture
def peak(monkeypatch: pytest.MonkeyPatch) -> Peak:
    seen = Peak()
    queue_work = Connection._queue_work_locked

    def recording(self: Any, item: Any) -> None:
        queue_work(self, item)
        seen.record(self)   # under the connection's lock, as the method's name says

    monkeypatch.setattr(Connection, "_queue_work_locked", recording)
    return seen


@pytest.fixture
def flooded_csms() -> Iterator[ocpp_sync.CSMS]:
    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT, close_timeout=1.0)
    handled = []

    @csms.on(v16.DataTransferRequest)
    def data_transfer(station: Any, request: Any) -> Any:
        handled.append(request.message_id)
        return v16.DataTransferResponse(status="Accepted", data="x" * ANSWER_BYTES)

    # The write timeout is out of the test's reach: only the bound on unanswered calls can
    # end the connection in time.
    csms.start("127.0.0.1", 0, write_timeout=WAIT * 6)
    csms.handled = handled  # type: ignore[attr-defined]
    yield csms
    csms.stop()


def test_a_station_that_floods_calls_without_reading_is_closed_and_bounded(
        flooded_csms: ocpp_sync.CSMS, peak: Peak) -> None:
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{flooded_csms.port}/ocpp/FLOOD", subprotocols=["ocpp1.6"], timeout=WAIT,
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    sent, failed = 0, False
    try:
        flooded_csms.wait_for_station("FLOOD", WAIT)
        deadline = time.monotonic() + WAIT
        try:
            while sent < FLOOD_CALLS and time.monotonic() < deadline:
                ws.send(f'[2,"f{sent}","DataTransfer",{{"vendorId":"v","messageId":"{sent}"}}]')
                sent += 1
        except (OSError, websocket.WebSocketException):
            failed = True   # the CSMS gave the connection up: what the test waits for
        assert wait_until(lambda: "FLOOD" not in flooded_csms.stations), \
            f"still connected after {sent} calls"
    finally:
        ws.shutdown()
    assert failed or sent == FLOOD_CALLS, f"the station could still send after {WAIT} s"
    # The queue is what grew without bound before: the bound holds at every call queued.
    assert peak.unanswered <= MAX_UNANSWERED_PEER_CALLS, vars(peak)
    assert peak.queued <= MAX_UNANSWERED_PEER_CALLS, vars(peak)
    assert peak.bytes <= MAX_QUEUED_PEER_BYTES, vars(peak)
    assert len(flooded_csms.handled) < sent  # type: ignore[attr-defined]


# -- a CSMS that streams one endless message ---------------------------------------------------

ANNOUNCED = 256 * 1024 * 1024       # the frame's 64-bit length
STREAM_CAP = 64 * 1024 * 1024  # the most the server streams before calling the bound broken
CHUNK = 64 * 1024
# Bytes in flight when the charge point's close comes: the server's small send buffer, the
# charge point's receive buffer (it reads eagerly) and one read of the transport.
IN_FLIGHT = 4 * 1024 * 1024
# What the charge point allocates besides the message: its threads, the frames read.
OVERHEAD = 1024 * 1024


class EndlessServer:
    """A raw 'CSMS': a handcrafted 101, then one text frame that never ends."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
        self._listener.settimeout(WAIT)
        self.port = self._listener.getsockname()[1]
        self.sent = 0                      # payload bytes written when the stream stopped
        self.close_code: int | None = None
        self.ended = ""                    # why the stream stopped
        self._thread = threading.Thread(target=self._serve, name="endless-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError as exc:
            self.ended = f"no connection: {exc}"
            return
        with sock:
            sock.settimeout(WAIT)
            self._upgrade(sock)
            sock.sendall(b"\x81\x7f" + struct.pack("!Q", ANNOUNCED))
            self._stream(sock)

    def _upgrade(self, sock: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the client left during the handshake")
            head += chunk
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                  .digest()).decode("ascii")
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Protocol: ocpp1.6\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode("ascii"))

    def _stream(self, sock: socket.socket) -> None:
        chunk = b"a" * CHUNK
        deadline = time.monotonic() + WAIT * 3
        while self.sent < STREAM_CAP:
            if time.monotonic() > deadline:
                self.ended = "timed out"
                return
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                self.ended = "the client's close" if self._read_close(sock) else "end of stream"
                return
            if writable:
                try:
                    self.sent += sock.send(chunk)
                except OSError as exc:
                    self.ended = f"send failed: {exc}"
                    return
        self.ended = "the cap"

    def _read_close(self, sock: socket.socket) -> bool:
        """The client's masked close frame, if that is what came; its code kept."""
        try:
            data = sock.recv(256)
        except OSError:
            return False
        if len(data) >= 8 and data[0] == 0x88:
            mask = data[2:6]
            self.close_code = ((data[6] ^ mask[0]) << 8) | (data[7] ^ mask[1])
            return True
        return False

    def join(self) -> None:
        self._thread.join(WAIT * 4)
        self._listener.close()


def test_a_charge_point_closes_an_endless_message_at_the_default_limit() -> None:
    server = EndlessServer()
    cp = ocpp_sync.ChargePoint("CP_1", f"ws://127.0.0.1:{server.port}/ocpp", version="1.6",
                               reconnect=False, ping_interval=None, close_timeout=1.0,
                               timeout=WAIT, connect_timeout=WAIT)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        cp.connect()
        server.join()
        assert wait_until(lambda: not cp.connected)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        cp.close()
    assert server.ended == "the client's close", (server.ended, server.sent)
    assert server.close_code == 1009
    assert server.sent <= MAX_MESSAGE_SIZE + IN_FLIGHT, server.sent
    # The message was dropped once over the limit, never held whole or twice.
    assert peak < MAX_MESSAGE_SIZE + OVERHEAD, peak
