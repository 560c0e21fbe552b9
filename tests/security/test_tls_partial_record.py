"""A TLS peer that sends half a record, then nothing, must not hold the reader past its deadline.

The poll before a read says "readable" as soon as any byte of a record is in; a blocking
SSL read then waits for the rest of the record, forever if it never comes. The hostile
peers here are built from ssl.SSLObject over raw loopback sockets, so that a test decides
exactly which bytes of a record go out. The transport's SSL socket is non-blocking for
this, so its writes are checked here too. Certificates are made at test time with trustme.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import trustme

import ocpp_sync
from ocpp_sync import v16

WAIT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class RawTls:
    """One end of a TLS connection whose record bytes the test moves by hand."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool) -> None:
        sock.settimeout(WAIT)
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=server_side,
                                    server_hostname=None if server_side else "127.0.0.1")
        self._received = b""

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _pull(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the peer closed during the exchange")
        self._in.write(data)

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._pull()

    def write(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def read_head(self) -> bytes:
        """An HTTP head (up to the blank line)."""
        while b"\r\n\r\n" not in self._received:
            try:
                self._received += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pull()
        head, _, self._received = self._received.partition(b"\r\n\r\n")
        return head

    def read_frame(self) -> tuple[int, bytes]:
        """One short final frame, masked (a client's) or not: (opcode, payload)."""
        while True:
            got = self._received
            if len(got) >= 2:
                head = 6 if got[1] & 0x80 else 2
                if len(got) >= head + (got[1] & 0x7F):
                    break
            try:
                self._received += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pull()
        first, size = got[0], got[1] & 0x7F
        assert first & 0x80 and size < 126, got[:2]
        key, payload = got[head - 4:head] if head == 6 else b"\0" * 4, got[head:head + size]
        self._received = got[head + size:]
        return first & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def read_text_frame(self) -> str:
        opcode, payload = self.read_frame()
        assert opcode == 0x1, opcode
        return payload.decode()

    def send_half_record(self, data: bytes) -> bytes:
        """``data`` as one TLS record, of which only the first half goes out; the other half
        is returned."""
        self._flush()
        self.tls.write(data)
        record = self._out.read()
        assert len(record) > 10
        self.sock.sendall(record[:len(record) // 2])
        return record[len(record) // 2:]


def text_frame(text: str, masked: bool) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    if not masked:
        return bytes((0x81, len(payload))) + payload
    key = os.urandom(4)
    return bytes((0x81, 0x80 | len(payload))) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(payload))


def run_bounded(name: str, target: Any, timeout: float = WAIT) -> tuple[Any, float]:
    """Run ``target`` in a thread joined with a deadline: a hang fails instead of blocking."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:   # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=name, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(timeout)
    elapsed = time.monotonic() - start
    assert not thread.is_alive(), f"{name} still blocked after {timeout:g} s"
    return outcome, elapsed


class HalfRecordCsms:
    """A TLS 'CSMS' that accepts one upgrade and answers the first call; to the second it
    sends half a record and nothing more.

    Two calls, because the charge point's worker reads until a blocking caller's answer
    has come; the caller then reads its next answer itself, with its deadline."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(WAIT)
        self.port = self._listener.getsockname()[1]
        self._context = context
        self.sent_half = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-half-record-csms",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError as exc:
            self.error = exc
            return
        with conn:
            try:
                peer = RawTls(conn, self._context, server_side=True)
                peer.handshake()
                head = peer.read_head().decode("latin-1")
                key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                           if line.lower().startswith("sec-websocket-key:"))
                accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
                peer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Protocol: ocpp1.6\r\n"
                            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
                first = json.loads(peer.read_text_frame())
                peer.write(text_frame(json.dumps(
                    [3, first[1], {"currentTime": "2026-01-01T00:00:00Z"}]), masked=False))
                second = json.loads(peer.read_text_frame())
                peer.send_half_record(text_frame(json.dumps(
                    [3, second[1], {"currentTime": "2026-01-01T00:00:00Z"}]), masked=False))
                self.sent_half.set()
            except BaseException as exc:
                self.error = exc
                return
            self.done.wait(WAIT)   # the rest of the record never comes

    def stop(self) -> None:
        self.done.set()
        self._thread.join(WAIT)
        self._listener.close()


@pytest.fixture
def half_record_csms(server_context: ssl.SSLContext) -> Iterator[HalfRecordCsms]:
    server = HalfRecordCsms(server_context)
    yield server
    server.stop()


def test_charge_point_call_times_out_on_half_a_record(
        half_record_csms: HalfRecordCsms, client_context: ssl.SSLContext) -> None:
    cp = ocpp_sync.ChargePoint("CP_1", f"wss://127.0.0.1:{half_record_csms.port}/ocpp",
                               ssl_context=client_context, reconnect=False, ping_interval=None,
                               close_timeout=1.0, connect_timeout=WAIT)
    try:
        cp.connect()
        cp.send(v16.HeartbeatRequest(), timeout=WAIT)
        outcome, elapsed = run_bounded("test-cp-send",
                                       lambda: cp.send(v16.HeartbeatRequest(), timeout=0.5))
        assert half_record_csms.sent_half.is_set(), half_record_csms.error
        assert isinstance(outcome.get("error"), ocpp_sync.CallTimeout), outcome
        assert elapsed < 3.0
    finally:
        outcome, elapsed = run_bounded("test-cp-close", cp.close)
    assert "error" not in outcome, outcome
    assert elapsed < 3.0


def upgrade_request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET /ocpp/CP_1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n").encode()


def upgraded_station(sock: socket.socket, context: ssl.SSLContext, csms: ocpp_sync.CSMS) -> RawTls:
    """A station over ``sock``: TLS, then the upgrade, until the CSMS counts it."""
    station = RawTls(sock, context, server_side=False)
    station.handshake()
    station.write(upgrade_request())
    assert station.read_head().startswith(b"HTTP/1.1 101 ")
    csms.wait_for_station("CP_1", timeout=WAIT)
    return station


def test_csms_gives_up_a_station_that_sends_half_a_record(
        server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    ping_interval, pong_timeout = 0.3, 0.5
    csms = ocpp_sync.CSMS(["1.6"], ssl_context=server_context, ping_interval=ping_interval,
                          pong_timeout=pong_timeout, close_timeout=1.0)
    gone = threading.Event()
    csms.on_disconnect(lambda station: gone.set())
    csms.start()
    try:
        with socket.create_connection(("127.0.0.1", csms.port), timeout=WAIT) as sock:
            station = upgraded_station(sock, client_context, csms)
            station.send_half_record(text_frame('[2,"1","Heartbeat",{}]', masked=True))
            start = time.monotonic()
            # The CSMS pings (it hears nothing whole), gets no pong and drops the link: its
            # ping, then the end of the stream, come on the raw socket.
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail(f"the CSMS still held the connection after {WAIT:g} s")
            elapsed = time.monotonic() - start
            assert gone.wait(WAIT)
        assert elapsed < ping_interval + pong_timeout + 2.0
    finally:
        csms.stop()


def test_the_rest_of_the_record_completes_the_message(
        server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    """The reader went back to poll (it pinged) with half a record in; the bytes OpenSSL
    kept are not lost: once the rest comes, the call is read whole and answered."""
    csms = ocpp_sync.CSMS(["1.6"], ssl_context=server_context, ping_interval=0.2,
                          pong_timeout=WAIT, close_timeout=1.0)

    @csms.on(v16.HeartbeatRequest)
    def heartbeat(station: Any, request: Any) -> Any:
        return v16.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    csms.start()
    try:
        with socket.create_connection(("127.0.0.1", csms.port), timeout=WAIT) as sock:
            station = upgraded_station(sock, client_context, csms)
            rest = station.send_half_record(text_frame('[2,"42","Heartbeat",{}]', masked=True))
            assert station.read_frame()[0] == 0x9   # a ping: the reader is not stuck in a read
            sock.sendall(rest)
            answer = json.loads(station.read_text_frame())
            assert answer[:2] == [3, "42"] and "currentTime" in answer[2]
    finally:
        csms.stop()


def test_a_tls_message_larger_than_the_socket_buffers_goes_through_whole(
        server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    """Both ends' writes would block (each writes megabytes before it reads): the SSL
    writes are retried on SSLWantWriteError with the same bytes, and nothing is lost."""
    from ocpp_sync.runtime.listener import WebSocketServer
    from ocpp_sync.websocket import connect

    def echo(transport: Any, station_id: str, request: Any) -> None:
        while (text := transport.receive()) is not None:
            transport.send(text)

    server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"], on_connection=echo,
                             ssl_context=server_context, max_message_size=8_000_000)
    server.start()
    try:
        client = connect(f"wss://127.0.0.1:{server.port}/ocpp/CP_1", "CP_1",
                         subprotocols=["ocpp1.6"], ssl_context=client_context, timeout=WAIT,
                         max_message_size=8_000_000)
        try:
            text = "".join(f"{n:07d}" for n in range(800_000))   # 5.6 MB, no two slices alike
            client.send(text)
            assert client.receive(timeout=WAIT) == text
        finally:
            client.close()
    finally:
        server.stop()
