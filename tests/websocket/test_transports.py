"""Transports over real loopback sockets: handshake rules, framing under concurrency, close, threads."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import pytest
import simple_websocket
import websocket
from support.raw import WAIT, wait_until

from ocpp_sync import ConnectionClosed
from ocpp_sync.runtime.listener import WebSocketServer
from ocpp_sync.websocket import (
    ConnectionRequest,
    HandshakeError,
    adapt_simple_websocket,
    connect,
)


def ocpp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ocpp-")]


def echo(transport, station_id, request) -> None:
    while True:
        text = transport.receive()
        if text is None:
            return
        transport.send(text if isinstance(text, str) else f"binary: {text!r}")


class Recorder:
    """on_connection that records what it saw and runs an optional body."""

    def __init__(self, body: Callable | None = None) -> None:
        self.body = body or echo
        self.connected = threading.Event()
        self.finished = threading.Event()
        self.transport = None
        self.station_id: str | None = None
        self.request: ConnectionRequest | None = None
        self.calls = 0

    def __call__(self, transport, station_id, request) -> None:
        self.calls += 1
        self.transport, self.station_id, self.request = transport, station_id, request
        self.connected.set()
        try:
            self.body(transport, station_id, request)
        finally:
            self.finished.set()


@pytest.fixture
def make_server():
    servers = []

    def make(on_connection=None, subprotocols=("ocpp1.6",), **kwargs) -> WebSocketServer:
        server = WebSocketServer("127.0.0.1", 0, subprotocols=subprotocols,
                                 on_connection=on_connection or echo, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def tls_contexts():
    """(server context, client context) for 127.0.0.1, from a throwaway CA."""
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def url(server: WebSocketServer, path: str = "/ocpp") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def raw_request(port: int, request: bytes, timeout: float = WAIT) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def upgrade_request(path: str = "/ocpp/CP_1", protocols: str = "ocpp1.6", **overrides) -> bytes:
    headers = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": protocols,
    }
    method = overrides.pop("method", "GET")
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- round trips and negotiation ---------------------------------------------------------------

def test_echo_round_trip(make_server):
    recorder = Recorder()
    # Over the default limit on purpose: many reads on both sides.
    server = make_server(recorder, max_message_size=4 * 1024 * 1024)
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"], max_message_size=4 * 1024 * 1024)
    try:
        assert client.subprotocol == "ocpp1.6"
        assert client.remote_address == f"127.0.0.1:{server.port}"
        client.send('[2,"1","Heartbeat",{}]')
        assert client.receive(timeout=WAIT) == '[2,"1","Heartbeat",{}]'
        big = json.dumps(["x" * (3 * 1024 * 1024 // 2), "ü€"])
        client.send(big)
        assert client.receive(timeout=WAIT) == big
        assert recorder.station_id == "CP_1"
        assert recorder.transport.subprotocol == "ocpp1.6"
        assert recorder.request.path == "/ocpp/CP_1"
    finally:
        client.close()


def test_subprotocol_server_preference(make_server):
    recorder = Recorder()
    server = make_server(recorder, subprotocols=("ocpp2.0.1", "ocpp1.6"))
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6", "ocpp2.0.1"])
    try:
        assert client.subprotocol == "ocpp2.0.1"
        assert recorder.connected.wait(WAIT)
        assert recorder.request.subprotocol == "ocpp2.0.1"
        assert recorder.request.subprotocols == ("ocpp1.6", "ocpp2.0.1")
    finally:
        client.close()


def test_no_common_subprotocol_gets_a_101_without_one_then_a_close(make_server):
    """OCPP-J 1.6 3.1.2 / 2.0.1 Part 4 3.1.2: no HTTP refusal; the client learns it for good."""
    recorder = Recorder()
    server = make_server(recorder, subprotocols=("ocpp1.6",))
    with pytest.raises(HandshakeError) as info:
        connect(url(server), "CP_1", subprotocols=["ocpp2.0.1", "ocpp2.1"])
    assert info.value.permanent and info.value.status is None
    for protocols in ("ocpp2.0.1", None):
        answer = raw_request(server.port, upgrade_request(protocols=protocols))
        head, _, frames = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Accept" in head
        assert b"Sec-WebSocket-Protocol" not in head
        assert frames[:1] == b"\x88" and frames[2:4] == (1002).to_bytes(2, "big")
    assert recorder.calls == 0


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /ocpp/CP_1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),                       # plain HTTP
    (upgrade_request(Upgrade=None), 400),
    (upgrade_request(Connection="keep-alive"), 400),
    (upgrade_request(Sec_WebSocket_Key="short"), 400),
    (upgrade_request(Sec_WebSocket_Version="8"), 426),
    (upgrade_request(Host=None), 400),
    (upgrade_request(path="/ocpp/"), 400),                                        # no station id
    (upgrade_request(method="POST"), 405),
    (b"garbage\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", 400),
])
def test_bad_upgrade_requests_get_http_errors(make_server, request_bytes, status):
    recorder = Recorder()
    server = make_server(recorder)
    answer = raw_request(server.port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert b"Content-Length: %d" % len(body) in head
    assert recorder.calls == 0


def test_oversized_request_is_refused(make_server):
    server = make_server(max_request_bytes=1024)
    answer = raw_request(server.port, upgrade_request(X_Filler="a" * 4000))
    assert answer.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("station_id", ["CP 1", "a/b%20c?d#e", "Zähler-1", "+&="])
def test_station_id_round_trips_percent_encoded(make_server, station_id):
    recorder = Recorder()
    server = make_server(recorder, strict_station_ids=False)
    client = connect(url(server, "/ocpp/"), station_id, subprotocols=["ocpp1.6"])
    try:
        assert recorder.connected.wait(WAIT)
        assert recorder.station_id == station_id
        assert recorder.request.station_id == station_id
        assert recorder.request.path.startswith("/ocpp/") and recorder.request.path.count("/") == 2
    finally:
        client.close()


def test_headers_reach_server_and_authorization_is_not_logged(make_server, caplog):
    caplog.set_level(logging.DEBUG, logger="ocpp_sync")
    caplog.set_level(logging.DEBUG, logger="websocket")
    recorder = Recorder()
    server = make_server(recorder)
    secret = base64.b64encode(b"CP_1:s3cr3t-pa55").decode()
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"],
                     headers={"Authorization": f"Basic {secret}", "X-Firmware": "1.2"})
    try:
        assert recorder.connected.wait(WAIT)
        assert recorder.request.headers["authorization"] == f"Basic {secret}"
        assert recorder.request.headers["x-FIRMWARE"] == "1.2"
        assert secret not in repr(recorder.request)
        assert secret not in repr(recorder.request.headers)
    finally:
        client.close()
    assert recorder.finished.wait(WAIT)
    assert caplog.records, "nothing was logged, so the check below proves nothing"
    assert secret not in caplog.text


def test_check_request_refuses_with_its_status(make_server):
    def check(request: ConnectionRequest) -> None:
        if request.station_id != "known":
            raise HandshakeError("unknown station", status=404, reason="unknown station")

    recorder = Recorder()
    server = make_server(recorder, check_request=check)
    with pytest.raises(HandshakeError) as info:
        connect(url(server), "stranger", subprotocols=["ocpp1.6"])
    assert info.value.status == 404
    assert "unknown station" in str(info.value)
    client = connect(url(server), "known", subprotocols=["ocpp1.6"])
    client.close()
    assert recorder.calls == 1


def test_connection_refused_is_a_handshake_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HandshakeError) as info:
        connect(f"ws://127.0.0.1:{port}/ocpp", "CP_1", subprotocols=["ocpp1.6"], timeout=2)
    assert info.value.status is None
    assert "refused" in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_client_rejects_a_subprotocol_it_did_not_ask_for():
    """A server that answers 101 with another subprotocol (as bare simple-websocket would)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                request = conn.recv(65536).decode()
                key = next(line.split(":", 1)[1].strip() for line in request.split("\r\n")
                           if line.lower().startswith("sec-websocket-key:"))
                accept = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                conn.sendall((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                              f"Sec-WebSocket-Protocol: ocpp2.1\r\n\r\n").encode())
                conn.recv(1024)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(HandshakeError):
            connect(f"ws://127.0.0.1:{port}/ocpp", "CP_1", subprotocols=["ocpp1.6"], timeout=2)
        thread.join(WAIT)


# --- concurrency: every write goes through one lock ---------------------------------------------

def _check_frames(received: list[str], senders: int, per_sender: int) -> None:
    assert len(received) == senders * per_sender
    last = {}
    for text in received:
        message = json.loads(text)           # a torn or interleaved frame fails here
        sender, seq, payload = message
        assert payload == hashlib.sha256(f"{sender}-{seq}".encode()).hexdigest() * 800
        assert seq == last.get(sender, -1) + 1
        last[sender] = seq


def _message(sender: int, seq: int) -> str:
    return json.dumps([sender, seq, hashlib.sha256(f"{sender}-{seq}".encode()).hexdigest() * 800])


def test_eight_threads_sending_over_the_server_transport(make_server):
    senders, per_sender = 8, 30
    go = threading.Event()
    errors: list[BaseException] = []

    def blast(transport, station_id, request) -> None:
        assert transport.receive(timeout=WAIT) == "go"

        def sender(n: int) -> None:
            try:
                go.wait(WAIT)
                for seq in range(per_sender):
                    transport.send(_message(n, seq))
            except BaseException as exc:   # reported by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
        for thread in threads:
            thread.start()
        go.set()
        transport.receive(timeout=WAIT)     # answers pings until the client closes
        for thread in threads:
            thread.join(WAIT)

    server = make_server(Recorder(blast))
    # A raw websocket-client peer that pings all the time, so the reading thread writes pongs
    # while the eight senders write messages.
    ws = websocket.create_connection(url(server, "/ocpp/CP_1"), subprotocols=["ocpp1.6"],
                                     timeout=WAIT, skip_utf8_validation=True)
    try:
        ws.send("go")
        received, pongs = [], 0
        while len(received) < senders * per_sender:
            ws.ping(b"p")
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                received.append(frame.data.decode())
            elif opcode == websocket.ABNF.OPCODE_PONG:
                pongs += 1
        assert not errors
        _check_frames(received, senders, per_sender)
        assert pongs > 0
    finally:
        ws.close()


def test_eight_threads_sending_over_the_client_transport(make_server):
    senders, per_sender = 8, 30
    received: list[str] = []
    done = threading.Event()

    def collect(transport, station_id, request) -> None:
        while len(received) < senders * per_sender:
            text = transport.receive(timeout=WAIT)
            if text is None:
                break
            received.append(text)
        done.set()
        transport.receive(timeout=WAIT)

    server = make_server(Recorder(collect))
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    try:
        threads = [threading.Thread(target=lambda n=n: [client.send(_message(n, s))
                                                        for s in range(per_sender)])
                   for n in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert done.wait(WAIT)
        _check_frames(received, senders, per_sender)
    finally:
        client.close()


# --- close, timeouts, pings ---------------------------------------------------------------------

def test_client_close_unblocks_server_receive(make_server):
    got = []
    recorder = Recorder(lambda t, s, r: got.append(t.receive()))
    server = make_server(recorder)
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    assert recorder.connected.wait(WAIT)
    client.close()
    assert recorder.finished.wait(WAIT)
    assert got == [None]
    with pytest.raises(ConnectionClosed):
        client.send("late")
    client.close()   # idempotent


def test_server_close_unblocks_client_receive(make_server):
    recorder = Recorder(lambda t, s, r: t.receive())
    server = make_server(recorder)
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    got = []
    reader = threading.Thread(target=lambda: got.append(client.receive()))
    reader.start()
    assert recorder.connected.wait(WAIT)
    recorder.transport.close(1001, "going away")
    reader.join(WAIT)
    assert got == [None]
    assert recorder.finished.wait(WAIT)
    with pytest.raises(ConnectionClosed):
        recorder.transport.send("late")
    client.close()


def test_local_close_unblocks_receive_on_the_same_side(make_server):
    server_got = []
    recorder = Recorder(lambda t, s, r: server_got.append(t.receive()))
    # The peer below never reads, so nobody answers the close frames: both closes are bounded.
    server = make_server(recorder, close_timeout=0.3)
    silent = websocket.create_connection(url(server, "/ocpp/CP_1"), subprotocols=["ocpp1.6"])
    try:
        assert recorder.connected.wait(WAIT)
        started = time.monotonic()
        recorder.transport.close()
        assert recorder.finished.wait(WAIT)
        assert time.monotonic() - started < 2.0
        assert server_got == [None]
    finally:
        silent.shutdown()

    # Client side: a server that never reads and never answers.
    released = threading.Event()
    silent_server = make_server(Recorder(lambda t, s, r: released.wait(WAIT)))
    client = connect(url(silent_server), "CP_1", subprotocols=["ocpp1.6"], close_timeout=0.3)
    client_got = []
    reader = threading.Thread(target=lambda: client_got.append(client.receive()))
    reader.start()
    try:
        started = time.monotonic()
        client.close()
        reader.join(WAIT)
        assert client_got == [None]
        assert time.monotonic() - started < 2.0
    finally:
        released.set()


def test_close_with_a_silent_peer_is_bounded_and_leaves_no_thread(make_server):
    recorder = Recorder(lambda t, s, r: None)   # returns at once: the server closes
    server = make_server(recorder, close_timeout=0.3)
    baseline = len(ocpp_threads())
    silent = websocket.create_connection(url(server, "/ocpp/CP_1"), subprotocols=["ocpp1.6"])
    try:
        assert recorder.finished.wait(WAIT)
        assert wait_until(lambda: len(ocpp_threads()) == baseline), ocpp_threads()
    finally:
        silent.shutdown()


def test_receive_timeout_then_connection_still_works(make_server):
    server_timeouts = []

    def body(transport, station_id, request) -> None:
        try:
            transport.receive(timeout=0.05)
        except TimeoutError:
            server_timeouts.append(True)
        transport.send("ready")
        echo(transport, station_id, request)

    server = make_server(Recorder(body))
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    try:
        assert client.receive(timeout=WAIT) == "ready"
        assert server_timeouts == [True]
        with pytest.raises(TimeoutError):
            client.receive(timeout=0.05)
        client.send("still here")
        assert client.receive(timeout=WAIT) == "still here"
        client.send("polled")
        assert wait_until(lambda: _poll(client) == "polled")
    finally:
        client.close()


def _poll(transport) -> str | None:
    """receive(timeout=0): what is already there, else a TimeoutError (here: None)."""
    try:
        return transport.receive(timeout=0)
    except TimeoutError:
        return None


def test_client_answers_pings(make_server):
    # simple-websocket closes the connection when a ping goes unanswered for one interval.
    recorder = Recorder()
    server = make_server(recorder, ping_interval=0.05)
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    try:
        for _ in range(6):
            with pytest.raises(TimeoutError):
                client.receive(timeout=0.1)
        client.send("alive")
        assert client.receive(timeout=WAIT) == "alive"
    finally:
        client.close()


def test_binary_messages_are_handed_up_as_bytes(make_server):
    """What a binary message means is the protocol core's decision, not the transport's."""
    recorder = Recorder()
    server = make_server(recorder)
    ws = websocket.create_connection(url(server, "/ocpp/CP_1"), subprotocols=["ocpp1.6"])
    try:
        ws.send_binary(b"\x00\x01")
        ws.send("text")
        assert ws.recv() == "binary: b'\\x00\\x01'"
        assert ws.recv() == "text"
    finally:
        ws.close()


def test_silent_client_is_dropped_after_the_handshake_timeout(make_server):
    server = make_server(handshake_timeout=0.3)
    baseline = len(ocpp_threads())
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as idle, \
            socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as partial:
        partial.sendall(b"GET /ocpp/CP_1 HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for sock in (idle, partial):
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 3.0
    assert wait_until(lambda: len(ocpp_threads()) == baseline), ocpp_threads()


# --- threads and stop ---------------------------------------------------------------------------

def test_thread_count_back_to_baseline_after_50_cycles():
    baseline = threading.active_count()
    server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"], on_connection=echo)
    server.start()
    try:
        assert "ocpp-server-accept" in ocpp_threads()
        with_server = threading.active_count()
        for n in range(50):
            client = connect(url(server), f"CP_{n}", subprotocols=["ocpp1.6"])
            client.send(str(n))
            assert client.receive(timeout=WAIT) == str(n)
            client.close()
        assert wait_until(lambda: threading.active_count() == with_server), ocpp_threads()
    finally:
        server.stop()
    assert wait_until(lambda: threading.active_count() == baseline), ocpp_threads()
    assert ocpp_threads() == []


def test_stop_closes_live_connections_and_is_idempotent():
    recorders = [Recorder() for _ in range(3)]
    it = iter(recorders)
    server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"],
                             on_connection=lambda t, s, r: next(it)(t, s, r))
    server.start()
    clients = [connect(url(server), f"CP_{n}", subprotocols=["ocpp1.6"]) for n in range(3)]
    names = set()
    for recorder in recorders:
        assert recorder.connected.wait(WAIT)
    names = set(ocpp_threads())
    # One thread per connection (it reads the frames too), none of the library's own besides.
    assert names == {"ocpp-conn-CP_0", "ocpp-conn-CP_1", "ocpp-conn-CP_2", "ocpp-server-accept"}
    idle = socket.create_connection(("127.0.0.1", server.port))   # still in its handshake
    try:
        started = time.monotonic()
        server.stop(timeout=5)
        assert time.monotonic() - started < 5
        assert all(r.finished.is_set() for r in recorders)
        assert [c.receive(timeout=WAIT) for c in clients] == [None, None, None]
        server.stop()
        assert wait_until(lambda: ocpp_threads() == []), ocpp_threads()
        with pytest.raises(HandshakeError):
            connect(url(server), "CP_late", subprotocols=["ocpp1.6"], timeout=2)
        with pytest.raises(RuntimeError):
            server.start()
    finally:
        idle.close()
        for client in clients:
            client.close()


def test_serve_forever_runs_in_the_caller_thread():
    server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"], on_connection=echo)
    runner = threading.Thread(target=server.serve_forever, name="ocpp-test-serve")
    runner.start()
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    client.send("x")
    assert client.receive(timeout=WAIT) == "x"
    server.stop()
    runner.join(WAIT)
    assert not runner.is_alive()
    assert client.receive(timeout=WAIT) is None
    client.close()
    assert wait_until(lambda: ocpp_threads() == []), ocpp_threads()


# --- adapt_simple_websocket ---------------------------------------------------------------------

def _accept_with_simple_websocket(listener: socket.socket) -> simple_websocket.Server:
    """What a WSGI server hosting flask-sock would do: parse the request, hand over the socket."""
    conn, _ = listener.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    environ = {"werkzeug.socket": conn}
    for line in data.decode().split("\r\n")[1:]:
        if line:
            name, _, value = line.partition(":")
            environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    return simple_websocket.Server.accept(environ, subprotocols=["ocpp1.6"])


def test_adapt_simple_websocket():
    baseline = threading.active_count()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        accepted = []
        acceptor = threading.Thread(target=lambda: accepted.append(
            _accept_with_simple_websocket(listener)))
        acceptor.start()
        client = connect(f"ws://127.0.0.1:{port}/ocpp", "CP_1", subprotocols=["ocpp1.6"])
        acceptor.join(WAIT)
    ws = accepted[0]
    transport = adapt_simple_websocket(ws, "ocpp1.6", "peer")
    try:
        client.send("hello")
        assert transport.receive(timeout=WAIT) == "hello"
        ws.send(b"\x00binary")               # handed up as bytes, for the connection to refuse
        assert client.receive(timeout=WAIT) == b"\x00binary"
        senders = [threading.Thread(target=lambda n=n: [transport.send(_message(n, s))
                                                        for s in range(30)])
                   for n in range(8)]
        for sender in senders:
            sender.start()
        received = [client.receive(timeout=WAIT) for _ in range(240)]
        for sender in senders:
            sender.join(WAIT)
        _check_frames(received, 8, 30)
        client.close()
        assert transport.receive(timeout=WAIT) is None
    finally:
        transport.close()
        client.close()
    assert not ws.thread.is_alive()
    assert wait_until(lambda: threading.active_count() == baseline)


# --- the listener's inline transport: frames read by the thread in receive() -------------------

def client_frame(opcode: int, payload: bytes, fin: bool = True, *, masked: bool = True,
                 rsv: int = 0, length_bytes: int | None = None) -> bytes:
    """One frame as a client sends it (masked), or broken in one of the ways given."""
    size = len(payload)
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 65536 else 8
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if length_bytes == 0:
        head += bytes([mask_bit | size])
    else:
        head += bytes([mask_bit | (126 if length_bytes == 2 else 127)])
        head += size.to_bytes(length_bytes, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawPeer:
    """A station speaking websocket frames by hand over a plain socket, so it can stay silent."""

    def __init__(self, port: int, path: str = "/ocpp/CP_1") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(upgrade_request(path, Sec_WebSocket_Key=key))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, head
            head += chunk
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert f"Sec-WebSocket-Accept: {accept}\r\n".encode() in head
        assert b"Sec-WebSocket-Protocol: ocpp1.6\r\n" in head
        assert b"Sec-WebSocket-Extensions" not in head
        self.buf = b""

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.sock.sendall(client_frame(opcode, payload, fin))

    def _read(self, count: int) -> bytes:
        while len(self.buf) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:count], self.buf[count:]
        return data

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame (never masked, always final here)."""
        first, second = self._read(2)
        assert first & 0x80 and not second & 0x80, (first, second)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._read(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read(8), "big")
        return first & 0x0F, self._read(size)

    def close(self) -> None:
        self.sock.close()


TEXT, CONT, BINARY, CLOSE, PING, PONG = 0x1, 0x0, 0x2, 0x8, 0x9, 0xA


def test_fragmented_text_is_reassembled_with_control_frames_between(make_server):
    server = make_server(Recorder())
    peer = RawPeer(server.port)
    try:
        text = '[2,"1","DataTransfer",{"data":"grüße €"}]'.encode()
        cut = text.index("€".encode()) + 1            # inside the 3-byte euro sign
        peer.send(TEXT, text[:10], fin=False)
        peer.send(PING, b"between")                     # control frames may come between fragments
        peer.send(CONT, text[10:cut], fin=False)
        peer.send(CONT, text[cut:])
        assert peer.frame() == (PONG, b"between")
        assert peer.frame() == (TEXT, text)              # echoed as one message
        peer.send(BINARY, b"\x00\x01", fin=False)        # binary, fragmented: one message
        peer.send(CONT, b"\x02")
        peer.send(TEXT, b"after")
        assert peer.frame() == (TEXT, b"binary: b'\\x00\\x01\\x02'")
        assert peer.frame() == (TEXT, b"after")
    finally:
        peer.close()


def test_station_ping_is_answered_while_the_reader_blocks_without_timeout(make_server):
    server = make_server(Recorder())   # echo: receive() with no timeout, nothing pending
    peer = RawPeer(server.port)
    try:
        for n in range(3):
            peer.send(PING, f"p{n}".encode())
            assert peer.frame() == (PONG, f"p{n}".encode())
    finally:
        peer.close()


def test_close_from_another_thread_wakes_the_reader_with_a_silent_peer(make_server):
    got: list[str | None] = []
    recorder = Recorder(lambda t, s, r: got.append(t.receive()))   # blocks: no timeout
    server = make_server(recorder, close_timeout=0.3)
    peer = RawPeer(server.port)    # never answers the close frame
    try:
        assert recorder.connected.wait(WAIT)
        started = time.monotonic()
        recorder.transport.close(1001, "going away")
        elapsed = time.monotonic() - started
        assert elapsed < 0.3 + 1.0, elapsed
        assert recorder.finished.wait(WAIT)
        assert got == [None]
        opcode, payload = peer.frame()
        assert (opcode, payload[:2]) == (CLOSE, (1001).to_bytes(2, "big"))
        assert peer.sock.recv(1) == b""                   # then the server dropped the connection
        assert recorder.transport._sock.fileno() == -1    # and its fd is closed
        with pytest.raises(ConnectionClosed):
            recorder.transport.send("late")
    finally:
        peer.close()


def test_close_with_no_reader_reads_the_answer_itself(make_server):
    released = threading.Event()
    recorder = Recorder(lambda t, s, r: released.wait(WAIT))    # never calls receive()
    server = make_server(recorder, close_timeout=5.0)
    client = connect(url(server), "CP_1", subprotocols=["ocpp1.6"])
    got = []
    reader = threading.Thread(target=lambda: got.append(client.receive(timeout=WAIT)))
    reader.start()
    try:
        assert recorder.connected.wait(WAIT)
        client.send("unread")                     # dropped: the server is closing
        started = time.monotonic()
        recorder.transport.close()
        # Well before close_timeout: the answer was read by close() itself, not waited out.
        assert time.monotonic() - started < 4.0
        reader.join(WAIT)
        assert got == [None]
        assert recorder.transport._sock.fileno() == -1
        recorder.transport.close()                # idempotent
    finally:
        released.set()
        client.close()

    # And with a peer that never answers: bounded by close_timeout.
    released2 = threading.Event()
    silent_recorder = Recorder(lambda t, s, r: released2.wait(WAIT))
    silent_server = make_server(silent_recorder, close_timeout=0.3)
    peer = RawPeer(silent_server.port)
    try:
        assert silent_recorder.connected.wait(WAIT)
        started = time.monotonic()
        silent_recorder.transport.close()
        assert time.monotonic() - started < 0.3 + 1.0
        assert peer.frame()[0] == CLOSE
    finally:
        released2.set()
        peer.close()


def test_message_over_the_limit_across_fragments_is_closed_with_1009(make_server):
    got: list[str | None] = []

    def body(transport, station_id, request) -> None:
        while (text := transport.receive()) is not None:
            got.append(text)

    recorder = Recorder(body)
    server = make_server(recorder, max_message_size=100)
    peer = RawPeer(server.port)
    try:
        peer.send(TEXT, b"a" * 100)                        # at the limit: fine
        peer.send(TEXT, "é".encode() * 30, fin=False)      # 60 bytes (30 characters)
        peer.send(CONT, "é".encode() * 30)                 # 120 bytes in all: over
        opcode, payload = peer.frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (CLOSE, 1009)
        peer.send(CLOSE, payload[:2])                      # answer the close
        assert recorder.finished.wait(WAIT)
        assert got == ["a" * 100]
        assert recorder.transport.message_too_large
    finally:
        peer.close()


def test_bad_frames_are_closed_with_a_protocol_error(make_server):
    recorder = Recorder()
    server = make_server(recorder)
    peer = RawPeer(server.port)
    try:
        peer.send(TEXT, b"\xff\xfe")                       # not UTF-8
        opcode, payload = peer.frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (CLOSE, 1007)
        assert recorder.finished.wait(WAIT)
        assert not recorder.transport.message_too_large
    finally:
        peer.close()


def test_keepalive_gives_up_a_silent_station(make_server):
    recorder = Recorder()
    server = make_server(recorder, ping_interval=0.1, pong_timeout=0.2)
    peer = RawPeer(server.port)
    try:
        assert peer.frame()[0] == PING                    # after 0.1 s of quiet
        peer.send(PONG, b"")
        assert peer.frame()[0] == PING                    # the pong counted: pinged again later
        assert recorder.finished.wait(WAIT)               # no pong this time: given up
        with pytest.raises((EOFError, OSError)):
            while True:
                peer.frame()
    finally:
        peer.close()


def test_a_station_costs_the_csms_two_threads_and_stop_leaves_none():
    import ocpp_sync

    before = set(threading.enumerate())
    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT)
    connected = threading.Event()
    csms.on_connect(lambda station: connected.set())   # runs in the station's dispatcher
    csms.start("127.0.0.1", 0)
    try:
        listening = set(threading.enumerate())
        # websocket-client starts no thread: every new thread below is the CSMS's.
        ws = websocket.create_connection(f"ws://127.0.0.1:{csms.port}/ocpp/CP_1",
                                         subprotocols=["ocpp1.6"], timeout=WAIT)
        try:
            assert connected.wait(WAIT)
            ws.send('[2,"1","Heartbeat",{}]')
            assert json.loads(ws.recv())[0] in (3, 4)
            new = [t.name for t in threading.enumerate() if t not in listening]
            assert len(new) == 2, new                    # the connection's reader + its dispatcher
            # Stop with the station still connected; it answers the CSMS's close frame.
            closed = []
            station_reader = threading.Thread(target=lambda: closed.append(
                ws.recv_data_frame(True)[0]))
            station_reader.start()
            csms.stop()
            station_reader.join(WAIT)
            assert closed == [websocket.ABNF.OPCODE_CLOSE]
        finally:
            ws.close()
    finally:
        csms.stop()
    assert wait_until(lambda: set(threading.enumerate()) <= before), \
        [t.name for t in threading.enumerate() if t not in before]


def test_frames_split_and_batched_any_way_arrive_whole(make_server):
    server = make_server(Recorder())
    peer = RawPeer(server.port)
    try:
        texts = [b"", b"short", b"m" * 300, b"l" * 70000, "\u00fc\u20ac".encode() * 50]
        stream = b"".join(client_frame(TEXT, t) for t in texts) + client_frame(PING, b"!")
        # The pong goes out while reading; the echoes once the reader returns: any order between.
        expected = sorted([(TEXT, t) for t in texts] + [(PONG, b"!")])
        peer.sock.sendall(stream)                       # all in one write
        assert sorted(peer.frame() for _ in expected) == expected
        for cut in (1, 2, 5, 7):                        # then in pieces of a few bytes
            for i in range(0, len(stream) - 70010, cut):
                peer.sock.sendall(stream[i:i + cut])
            peer.sock.sendall(stream[i + cut:])
            frames = [peer.frame() for _ in expected]
            assert [f for f in frames if f[0] == TEXT] == [(TEXT, t) for t in texts]
            assert sorted(frames) == expected
    finally:
        peer.close()


@pytest.mark.parametrize("frame, code", [
    (client_frame(TEXT, b"unmasked", masked=False), 1002),
    (client_frame(TEXT, b"rsv", rsv=4), 1002),
    (client_frame(TEXT, b"long form for 5 bytes", length_bytes=2), 1002),
    (client_frame(PING, b"p" * 126), 1002),            # control frames carry 125 bytes at most
    (client_frame(0x3, b"reserved opcode"), 1002),
    (client_frame(CONT, b"continuation of nothing"), 1002),
    (client_frame(TEXT, b"ok\xc3"), 1007),              # cut inside a UTF-8 sequence
])
def test_malformed_frames_after_good_ones_close_with_the_right_code(make_server, frame, code):
    recorder = Recorder()
    server = make_server(recorder)
    peer = RawPeer(server.port)
    try:
        peer.send(TEXT, b"first")
        assert peer.frame() == (TEXT, b"first")
        # In one read: the good message is handed out and its echo goes out before the close
        # frame the bad one causes (Autobahn 3.2, 4.1.3, 5.15). Nothing after the bad frame is read.
        peer.sock.sendall(client_frame(TEXT, b"before") + frame + client_frame(TEXT, b"after"))
        frames = [peer.frame()]
        while frames[-1][0] != CLOSE:
            frames.append(peer.frame())
        assert frames[:-1] == [(TEXT, b"before")]
        opcode, payload = frames[-1]
        assert int.from_bytes(payload[:2], "big") == code
        assert recorder.finished.wait(WAIT)
    finally:
        peer.close()


def test_a_close_before_the_messages_ahead_of_a_bad_frame_are_read_fails_the_connection(make_server):
    def read_one_then_leave(transport, station_id, request) -> None:
        got.append(transport.receive(timeout=WAIT))

    got: list[str | None] = []
    recorder = Recorder(read_one_then_leave)
    server = make_server(recorder)
    peer = RawPeer(server.port)
    try:
        # The handler returns (the listener closes, 1000) with "two" still unread: the bad frame
        # behind it sets the code, and nothing after it is read.
        peer.sock.sendall(client_frame(TEXT, b"one") + client_frame(TEXT, b"two")
                          + client_frame(0x3, b"reserved opcode") + client_frame(TEXT, b"after"))
        opcode, payload = peer.frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (CLOSE, 1002)
        assert recorder.finished.wait(WAIT)
        assert got == ["one"]
    finally:
        peer.close()


def test_tls_messages_of_every_size_with_keepalive_polling(make_server, tls_contexts):
    server_context, client_context = tls_contexts
    # The ping interval makes the reader wait with poll() between TLS reads, both ways.
    recorder = Recorder()
    server = make_server(recorder, ssl_context=server_context, ping_interval=0.05)
    client = connect(f"wss://127.0.0.1:{server.port}/ocpp", "CP_1", subprotocols=["ocpp1.6"],
                     ssl_context=client_context, ping_interval=0.05)
    try:
        for size in (0, 1, 125, 126, 65535, 65536, 200_000):   # the last under the default limit
            text = ("é" if size % 2 else "x") * size
            client.send(text)
            assert client.receive(timeout=WAIT) == text
        burst = [f"m{n}" * 500 for n in range(50)]     # many records in flight at once
        for text in burst:
            client.send(text)
        assert [client.receive(timeout=WAIT) for _ in burst] == burst
    finally:
        client.close()
    assert recorder.finished.wait(WAIT)


# --- the charge point's transport: websocket-client's handshake, then frames read inline --------

class RawServer:
    """A CSMS answering the upgrade and speaking frames by hand, to see the charge point's wire.

    ``after_101`` goes out in the same write as the 101 (with TLS: the same record), so a frame
    can sit right behind the handshake response.
    """

    def __init__(self, after_101: bytes = b"", tls=None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self.conn: socket.socket | None = None
        self.buf = b""
        self.keys: list[bytes] = []
        self.thread = threading.Thread(target=self._accept, args=(after_101, tls),
                                       name="test-raw-csms", daemon=True)
        self.thread.start()

    def _accept(self, after_101: bytes, tls) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(WAIT)
        if tls is not None:
            conn = tls.wrap_socket(conn, server_side=True)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                  .digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                     b"\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n" + after_101)
        self.conn = conn
        self.accepted.set()

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        assert self.conn is not None
        self.conn.sendall(client_frame(opcode, payload, fin, masked=False))

    def _read(self, count: int) -> bytes:
        assert self.conn is not None
        while len(self.buf) < count:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError("the charge point closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:count], self.buf[count:]
        return data

    def frame(self) -> tuple[int, bytes]:
        """(opcode, unmasked payload) of the charge point's next frame: final, masked (key kept)."""
        first, second = self._read(2)
        assert first & 0x80 and second & 0x80, (first, second)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._read(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read(8), "big")
        key = self._read(4)
        self.keys.append(key)
        masked = self._read(size)
        return first & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(masked))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def raw_server():
    servers: list[RawServer] = []

    def make(after_101: bytes = b"", tls=None) -> RawServer:
        servers.append(RawServer(after_101, tls))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _close_in_background(client) -> threading.Thread:
    thread = threading.Thread(target=client.close, name="test-close", daemon=True)
    thread.start()
    return thread


def test_charge_point_masks_every_frame_with_a_fresh_key(raw_server):
    server = raw_server()
    client = connect(server.url(), "CP_1", subprotocols=["ocpp1.6"], close_timeout=WAIT)
    assert server.accepted.wait(WAIT)
    texts = ["", "short", "x" * 125, "y" * 126, "é" * 35_000, '[2,"1","Heartbeat",{}]']
    for text in texts:                                  # lengths in 7, 16 and 64 bits
        client.send(text)
        assert server.frame() == (TEXT, text.encode())
    server.send(PING, b"are you there")
    server.send(TEXT, b"done")
    assert client.receive(timeout=WAIT) == "done"      # the ping was read (and answered) first
    assert server.frame() == (PONG, b"are you there")
    closing = _close_in_background(client)
    assert server.frame() == (CLOSE, (1000).to_bytes(2, "big"))
    server.send(CLOSE, (1000).to_bytes(2, "big"))
    closing.join(WAIT)
    assert not closing.is_alive()
    assert len(server.keys) == len(texts) + 2
    assert len(set(server.keys)) == len(server.keys), server.keys   # never the same key twice


def test_charge_point_reads_unmasked_frames_fragments_and_pings(raw_server):
    # A frame in the same write as the 101: websocket-client's handshake must not swallow it.
    server = raw_server(after_101=client_frame(TEXT, b"right behind the 101", masked=False))
    client = connect(server.url(), "CP_1", subprotocols=["ocpp1.6"])
    try:
        assert server.accepted.wait(WAIT)
        assert client.receive(timeout=WAIT) == "right behind the 101"
        text = '[2,"1","DataTransfer",{"data":"grüße €"}]'.encode()
        cut = text.index("€".encode()) + 1            # inside the 3-byte euro sign
        server.send(TEXT, text[:10], fin=False)
        server.send(PING, b"between")                   # control frames may come between fragments
        server.send(CONT, text[10:cut], fin=False)
        server.send(CONT, text[cut:])
        assert client.receive(timeout=WAIT) == text.decode()
        assert server.frame() == (PONG, b"between")
        server.send(BINARY, b"\x00\x01", fin=False)     # binary, fragmented: one message
        server.send(CONT, b"\x02")
        assert client.receive(timeout=WAIT) == b"\x00\x01\x02"
        server.send(TEXT, b"l" * 70_000)                # over 64 KiB: a 64-bit length
        assert client.receive(timeout=WAIT) == "l" * 70_000
        # The server closes: answered once, with its code; the reader sees the end.
        server.send(CLOSE, (1001).to_bytes(2, "big") + b"going away")
        assert client.receive(timeout=WAIT) is None
        assert server.frame() == (CLOSE, (1001).to_bytes(2, "big"))
        with pytest.raises(ConnectionClosed):
            client.send("late")
    finally:
        client.close()
    with pytest.raises(EOFError):                       # close() sent no second close frame
        server.frame()


@pytest.mark.parametrize("frame, code", [
    (client_frame(TEXT, b"masked by the server"), 1002),
    (client_frame(PING, b"masked ping"), 1002),
    (client_frame(TEXT, b"ok\xc3", masked=False), 1007),    # cut inside a UTF-8 sequence
])
def test_charge_point_closes_on_a_bad_frame_from_the_server(raw_server, frame, code):
    server = raw_server()
    client = connect(server.url(), "CP_1", subprotocols=["ocpp1.6"], close_timeout=WAIT)
    assert server.accepted.wait(WAIT)
    assert server.conn is not None
    server.conn.sendall(client_frame(TEXT, b"first", masked=False) + frame)
    assert client.receive(timeout=WAIT) == "first"
    assert client.receive(timeout=WAIT) is None
    opcode, payload = server.frame()
    assert (opcode, int.from_bytes(payload[:2], "big")) == (CLOSE, code)
    server.send(CLOSE, payload[:2])                     # answer it: close() returns at once
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < WAIT / 2


def test_charge_point_keepalive_pings_a_quiet_server_and_gives_it_up(raw_server):
    server = raw_server()
    client = connect(server.url(), "CP_1", subprotocols=["ocpp1.6"], ping_interval=0.1,
                     pong_timeout=0.2)
    got: list[str | None] = []
    reader = threading.Thread(target=lambda: got.append(client.receive()), name="test-reader",
                              daemon=True)
    reader.start()
    try:
        assert server.accepted.wait(WAIT)
        assert server.frame()[0] == PING                # after 0.1 s of quiet
        server.send(PONG, b"")
        assert server.frame()[0] == PING                # the pong counted: pinged again later
        reader.join(WAIT)                               # no pong this time: given up
        assert got == [None]
    finally:
        client.close()


def test_charge_point_over_tls_reads_a_frame_in_the_handshake_record(raw_server, tls_contexts):
    server_context, client_context = tls_contexts
    # Decrypted along with the 101, so it waits in the SSL object where poll cannot see it.
    server = raw_server(after_101=client_frame(TEXT, b"in the same record", masked=False),
                        tls=server_context)
    client = connect(server.url("wss"), "CP_1", subprotocols=["ocpp1.6"],
                     ssl_context=client_context, close_timeout=0.5)
    try:
        assert server.accepted.wait(WAIT)
        assert client.receive(timeout=WAIT) == "in the same record"
        for size in (0, 125, 126, 65536):
            client.send("t" * size)
            assert server.frame() == (TEXT, b"t" * size)
            server.send(TEXT, b"r" * size)
            assert client.receive() == "r" * size
    finally:
        client.close()


# --- a peer that stops reading: writes give up after write_timeout, not never ---------------

def _write_until_refused(transport, message: str) -> float:
    """Send ``message`` until the transport refuses; the seconds that took."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        while time.monotonic() - started < WAIT:
            transport.send(message)
    return time.monotonic() - started


def test_a_charge_point_write_to_a_csms_that_stopped_reading_gives_up(raw_server):
    server = raw_server()
    client = connect(server.url(), "CP_1", subprotocols=["ocpp1.6"], timeout=0.5,
                     close_timeout=0.5)
    try:
        assert server.accepted.wait(WAIT)
        # The kernel buffers take a few MB, then every write waits for a reader that never comes.
        assert _write_until_refused(client, "x" * 1_000_000) < WAIT
        assert client.receive(timeout=WAIT) is None   # the connection is over for the reader too
    finally:
        client.close()


def test_a_csms_write_to_a_station_that_stopped_reading_gives_up(make_server):
    outcome: list[float] = []
    done = threading.Event()

    def flood(transport, station_id, request) -> None:
        try:
            outcome.append(_write_until_refused(transport, "y" * 1_000_000))
        finally:
            done.set()

    server = make_server(flood, write_timeout=0.5, close_timeout=0.5)
    peer = RawPeer(server.port)   # never reads again after the handshake
    try:
        assert done.wait(WAIT * 2)
        assert outcome and outcome[0] < WAIT
    finally:
        peer.close()


def test_a_charge_point_write_over_tls_to_a_csms_that_stopped_reading_gives_up(raw_server, tls_contexts):
    server_context, client_context = tls_contexts
    server = raw_server(tls=server_context)
    client = connect(server.url("wss"), "CP_1", subprotocols=["ocpp1.6"],
                     ssl_context=client_context, timeout=0.5, close_timeout=0.5)
    try:
        assert server.accepted.wait(WAIT)
        assert _write_until_refused(client, "z" * 1_000_000) < WAIT
    finally:
        client.close()


def test_mask_keys_are_never_repeated_nor_shared_with_a_forked_child():
    from ocpp_sync.websocket import inline

    keys = [inline._MASK_KEYS.take() for _ in range(3000)]   # spans several os.urandom batches
    assert len(set(keys)) > 2990   # 4 random bytes: a chance collision or two at most
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, b"".join(inline._MASK_KEYS.take() for _ in range(16)))
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64)
    os.close(read_end)
    os.waitpid(pid, 0)
    parent = b"".join(inline._MASK_KEYS.take() for _ in range(16))
    assert len(child) == 64 and child != parent
