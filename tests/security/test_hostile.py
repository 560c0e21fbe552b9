"""Hostile input at the door: each is refused with its status, reported, and leaves no thread.

Everything runs against the real listener over loopback sockets.
"""
from __future__ import annotations

import base64
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
import websocket
from support.raw import WAIT, wait_until

from ocpp_sync.runtime.listener import WebSocketServer
from ocpp_sync.security import Reason, SecurityEvent, server_ssl_context
from ocpp_sync.websocket import HandshakeError, connect


def connection_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("ocpp-conn-", "ocpp-ws-"))]


class Events:
    def __init__(self) -> None:
        self.items: list[SecurityEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: SecurityEvent) -> None:
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def wait_for(self, reason: Reason, timeout: float = WAIT) -> SecurityEvent:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((e for e in self.items if e.reason is reason), None), timeout)
        assert found, f"no {reason} event; got {self.items}"
        return found


class Served:
    """A listener whose connections stay open until released (or the client leaves)."""

    def __init__(self, **options: Any) -> None:
        self.events = Events()
        self.release = threading.Event()
        self.accepted: list[str] = []
        self.server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"],
                                      on_connection=self._on_connection,
                                      on_security_event=self.events, **options)
        self.server.start()
        self.port = self.server.port
        self.url = f"ws://127.0.0.1:{self.port}/ocpp"

    def _on_connection(self, transport: Any, station_id: str, request: Any) -> None:
        self.accepted.append(station_id)
        while not self.release.is_set():
            try:
                text = transport.receive(timeout=0.2)
            except TimeoutError:
                continue
            if text is None:
                return
            transport.send(text)

    def stop(self) -> None:
        self.release.set()
        self.server.stop()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    servers: list[Served] = []

    def make(**options: Any) -> Served:
        served = Served(**options)
        servers.append(served)
        return served

    yield make
    for served in servers:
        served.stop()


def upgrade_request(path: str = "/ocpp/CP_1", *extra_lines: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
             "Sec-WebSocket-Protocol: ocpp1.6", *extra_lines]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer_to(port: int, request: bytes) -> bytes:
    """Send a raw request; return the server's whole answer (it closes after refusing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer[9:12])


pytestmark = pytest.mark.usefixtures("no_leftover_threads")


# -- request size -----------------------------------------------------------------------------


@pytest.mark.parametrize("request_bytes, status", [
    (upgrade_request("/ocpp/" + "A" * 9000), 414),                          # request line
    (upgrade_request("/ocpp/CP_1", "X-Filler: " + "a" * 20000), 431),       # one huge header
    (upgrade_request("/ocpp/CP_1", *[f"X-H{i}: v" for i in range(150)]), 431),   # too many
    (b"GET /" + b"A" * 20000, 414),                                         # no line end at all
])
def test_oversized_requests(serve: Callable[..., Served], request_bytes: bytes,
                            status: int) -> None:
    served = serve()
    assert status_of(answer_to(served.port, request_bytes)) == status
    event = served.events.wait_for(Reason.REQUEST_TOO_LARGE)
    assert event.status == status
    assert served.accepted == []
    assert wait_until(lambda: not connection_threads())


def test_limits_are_configurable(serve: Callable[..., Served]) -> None:
    served = serve(max_request_line=64, max_header_count=8)
    assert status_of(answer_to(served.port, upgrade_request("/ocpp/" + "A" * 60))) == 414
    assert status_of(answer_to(served.port, upgrade_request(
        "/ocpp/CP_1", *[f"X-H{i}: v" for i in range(3)]))) == 431   # 6 standard + 3
    # Within both limits the same listener accepts.
    connect(served.url, "CP_1", subprotocols=["ocpp1.6"], timeout=WAIT).close()


# -- slow and silent clients ------------------------------------------------------------------


def test_silent_client_is_dropped_and_holds_no_thread(serve: Callable[..., Served]) -> None:
    served = serve(handshake_timeout=0.5)
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        assert wait_until(lambda: len(connection_threads()) == 1)
        started = time.monotonic()
        answer = sock.recv(65536)
        assert status_of(answer) == 408
        assert sock.recv(65536) == b""           # and the server closed the connection
        assert time.monotonic() - started < 5
    assert served.events.wait_for(Reason.HANDSHAKE_TIMEOUT).status == 408
    assert wait_until(lambda: not connection_threads())


def test_trickling_client_is_dropped_at_the_deadline(serve: Callable[..., Served]) -> None:
    """The deadline covers the whole request, not each read: a byte every 50 ms does not help."""
    served = serve(handshake_timeout=0.5)
    request = upgrade_request()
    answer = b""
    ended = False
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        pace = threading.Event()
        for i in range(len(request) - 1):      # the whole request would take about 10 s
            try:
                sock.sendall(request[i:i + 1])
                sock.settimeout(0)
                answer = sock.recv(65536)
                ended = True                   # the 408, or the end of the stream
            except BlockingIOError:
                pass
            except OSError:
                ended = True                   # reset: the server closed with our bytes unread
            if ended:
                break
            sock.settimeout(WAIT)
            pace.wait(0.05)
    assert ended, "the server waited for the whole trickled request"
    assert not answer or status_of(answer) == 408
    served.events.wait_for(Reason.HANDSHAKE_TIMEOUT)
    assert wait_until(lambda: not connection_threads())
    assert served.accepted == []


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    directory = tmp_path_factory.mktemp("hostile-pki")
    certfile, keyfile = directory / "server.pem", directory / "server.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    return server_ssl_context(certfile, keyfile)


def test_silent_client_on_tls_is_dropped(serve: Callable[..., Served],
                                         tls_context: ssl.SSLContext) -> None:
    served = serve(handshake_timeout=0.5, ssl_context=tls_context)
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        assert sock.recv(65536) == b""           # no TLS, no HTTP: just closed
    event = served.events.wait_for(Reason.HANDSHAKE_TIMEOUT)
    assert event.status is None
    assert wait_until(lambda: not connection_threads())


def test_garbage_instead_of_tls(serve: Callable[..., Served],
                                tls_context: ssl.SSLContext) -> None:
    served = serve(ssl_context=tls_context)
    try:
        answer = answer_to(served.port, upgrade_request())
    except ConnectionResetError:
        answer = b""
    assert not answer.startswith(b"HTTP/1.1 101")
    served.events.wait_for(Reason.TLS_FAILED)
    assert wait_until(lambda: not connection_threads())


# -- message size -----------------------------------------------------------------------------


def test_message_over_the_limit_is_closed_with_1009(serve: Callable[..., Served]) -> None:
    served = serve(max_message_size=1024)
    ws = websocket.create_connection(f"{served.url}/CP_1", subprotocols=["ocpp1.6"],
                                     timeout=WAIT)
    try:
        ws.send("x" * 1000)
        assert ws.recv() == "x" * 1000           # under the limit: echoed
        ws.send("y" * 5000)
        frame = ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1009
    finally:
        ws.shutdown()
    event = served.events.wait_for(Reason.MESSAGE_TOO_LARGE)
    assert (event.station_id, event.close_code) == ("CP_1", 1009)
    assert wait_until(lambda: not connection_threads())


# -- connections per address ------------------------------------------------------------------


def test_connections_per_address_are_capped(serve: Callable[..., Served]) -> None:
    served = serve(max_connections_per_address=2, handshake_timeout=WAIT)
    first = connect(served.url, "CP_1", subprotocols=["ocpp1.6"], timeout=WAIT)
    silent = socket.create_connection(("127.0.0.1", served.port), timeout=WAIT)  # half open
    try:
        assert wait_until(lambda: len([n for n in connection_threads()
                                       if n.startswith("ocpp-conn-")]) == 2)
        with pytest.raises(HandshakeError) as info:
            connect(served.url, "CP_2", subprotocols=["ocpp1.6"], timeout=WAIT)
        assert info.value.status == 429
        assert status_of(answer_to(served.port, upgrade_request("/ocpp/CP_3"))) == 429
        event = served.events.wait_for(Reason.TOO_MANY_CONNECTIONS)
        assert event.status == 429 and event.remote_address.startswith("127.0.0.1:")
        # The turned-away connections got no thread of their own.
        assert len([n for n in connection_threads() if n.startswith("ocpp-conn-")]) == 2
        assert served.accepted == ["CP_1"]
    finally:
        silent.close()
    # A slot is free again once the silent connection is gone.
    assert wait_until(lambda: len([n for n in connection_threads()
                                   if n.startswith("ocpp-conn-")]) == 1)
    second = connect(served.url, "CP_2", subprotocols=["ocpp1.6"], timeout=WAIT)
    second.close()
    first.close()


def test_pending_handshakes_are_capped_from_any_address(serve: Callable[..., Served]) -> None:
    served = serve(max_pending_handshakes=2, handshake_timeout=WAIT)
    silent = [socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) for _ in range(2)]
    try:
        assert wait_until(lambda: len(connection_threads()) == 2)
        assert status_of(answer_to(served.port, upgrade_request("/ocpp/CP_3"))) == 503
        assert served.events.wait_for(Reason.TOO_MANY_CONNECTIONS).status == 503
        assert len(connection_threads()) == 2
    finally:
        for sock in silent:
            sock.close()
    # Open connections are not handshakes: once upgraded they no longer count.
    assert wait_until(lambda: not connection_threads())
    opened = []
    try:
        for station_id in ("CP_1", "CP_2", "CP_3"):
            transport = connect(served.url, station_id, subprotocols=["ocpp1.6"], timeout=WAIT)
            opened.append(transport)
            transport.send("[]")      # an echo proves the server is past the handshake
            assert transport.receive(timeout=WAIT) == "[]"
    finally:
        for transport in opened:
            transport.close()


def test_connection_cap_under_tls(serve: Callable[..., Served],
                                  tls_context: ssl.SSLContext) -> None:
    """Under TLS there is no HTTP answer without a handshake: the extra connection is closed."""
    served = serve(max_connections_per_address=1, handshake_timeout=WAIT, ssl_context=tls_context)
    holder = socket.create_connection(("127.0.0.1", served.port), timeout=WAIT)
    try:
        assert wait_until(lambda: len(connection_threads()) == 1)
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with pytest.raises(HandshakeError) as info:
            connect(served.url.replace("ws://", "wss://"), "CP_2", subprotocols=["ocpp1.6"],
                    timeout=WAIT, ssl_context=client)
        assert info.value.status is None
        event = served.events.wait_for(Reason.TOO_MANY_CONNECTIONS)
        assert event.status is None
        assert len(connection_threads()) == 1
    finally:
        holder.close()


def test_many_turned_away_connections_are_all_answered(serve: Callable[..., Served]) -> None:
    served = serve(max_connections_per_address=1, handshake_timeout=WAIT)
    holder = connect(served.url, "CP_1", subprotocols=["ocpp1.6"], timeout=WAIT)
    try:
        statuses = [status_of(answer_to(served.port, upgrade_request(f"/ocpp/X{i}")))
                    for i in range(20)]
        assert statuses == [429] * 20
    finally:
        holder.close()


# -- station ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/ocpp/" + "A" * 49,          # too long
    "/ocpp/a%2Fb",                # '/' once decoded
    "/ocpp/caf%C3%A9",            # not ASCII
    "/ocpp/bell%07",              # control character
    "/ocpp/bad%FF",               # not UTF-8
    "/ocpp/",                     # empty
])
def test_invalid_station_ids_are_400(serve: Callable[..., Served], path: str) -> None:
    served = serve(strict_station_ids=True)
    assert status_of(answer_to(served.port, upgrade_request(path))) == 400
    assert served.events.wait_for(Reason.INVALID_STATION_ID).status == 400
    assert served.accepted == []


def test_a_48_character_id_is_fine(serve: Callable[..., Served]) -> None:
    served = serve(strict_station_ids=True)
    connect(served.url, "A" * 48, subprotocols=["ocpp1.6"], timeout=WAIT).close()


def test_unknown_station_is_404(serve: Callable[..., Served]) -> None:
    served = serve(known_stations={"CP_1"})
    with pytest.raises(HandshakeError) as info:
        connect(served.url, "CP_9", subprotocols=["ocpp1.6"], timeout=WAIT)
    assert info.value.status == 404
    event = served.events.wait_for(Reason.UNKNOWN_STATION)
    assert (event.station_id, event.status) == ("CP_9", 404)
    connect(served.url, "CP_1", subprotocols=["ocpp1.6"], timeout=WAIT).close()
    assert served.accepted == ["CP_1"]


def test_every_refusal_reaches_the_hook(serve: Callable[..., Served]) -> None:
    served = serve()
    for request, reason, status in [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Reason.BAD_REQUEST, 400),
        (upgrade_request().replace(b"ocpp1.6", b"ocpp9"), Reason.NO_COMMON_SUBPROTOCOL, 101),
    ]:
        assert status_of(answer_to(served.port, request)) == status
        served.events.wait_for(reason)


def test_a_failing_event_hook_does_not_break_the_server(serve: Callable[..., Served]) -> None:
    served = serve(known_stations={"CP_1"})

    def broken(event: SecurityEvent) -> None:
        raise RuntimeError("hook bug")

    served.server._on_security_event = broken
    assert status_of(answer_to(served.port, upgrade_request("/ocpp/CP_9"))) == 404
    connect(served.url, "CP_1", subprotocols=["ocpp1.6"], timeout=WAIT).close()
