"""The upgrade handshake: the request parser without sockets, then the listener's answers."""
from __future__ import annotations

import base64
import os
import socket
import string
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.raw import WAIT, wait_until

from ocpp_sync import CSMS, ChargePoint, HandshakeError
from ocpp_sync.errors import UpgradeRefused
from ocpp_sync.protocol.retry import BackOff
from ocpp_sync.runtime.listener import WebSocketServer
from ocpp_sync.security import Reason, Refused
from ocpp_sync.websocket.handshake import RequestParser, accept_response, refusal_response

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits


def request(*header_lines: str, path: str = "/ocpp/CP_1") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: ocpp1.6", *header_lines]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse(data: bytes, **limits: int):
    parser = RequestParser(**limits)
    head = parser.feed(data)
    return head, parser.leftover


def status_of(data: bytes, **limits: int) -> int:
    with pytest.raises(UpgradeRefused) as info:
        parse(data, **limits)
    return info.value.status


# --- the parser, without sockets ----------------------------------------------------------------

def test_parser_gives_the_head_and_what_came_after_it():
    head, leftover = parse(request("X-Firmware: 1.2") + b"\x81\x80abcd")
    assert (head.method, head.target, head.http_version) == ("GET", "/ocpp/CP_1", "HTTP/1.1")
    assert head.headers["x-firmware"] == "1.2"
    assert leftover == b"\x81\x80abcd"


def test_parser_needs_the_whole_head():
    data = request()
    parser = RequestParser()
    for i in range(len(data) - 1):
        assert parser.feed(data[i:i + 1]) is None
    assert parser.feed(data[-1:]) is not None


def test_a_second_host_header_is_refused():
    assert status_of(request("Host: evil.example")) == 400


@given(st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=5),   # a leading space folds a line
       st.sampled_from(list('"(),/;<=>?@[\\]{} \t') + ["é"]),
       st.text(alphabet=TOKEN_CHARS, min_size=0, max_size=5))
def test_a_header_name_that_is_not_a_token_is_refused(before, bad, after):
    assert status_of(request(f"{before}{bad}{after}: x")) == 400


@given(st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20))
def test_a_token_header_name_is_accepted(name):
    head, _ = parse(request(f"{name}: v"))
    assert name in head.headers


def test_limits_keep_their_statuses():
    assert status_of(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n") == 414
    assert status_of(request("X-Filler: " + "a" * 4000), max_request_bytes=1024) == 431
    assert status_of(request(*(f"X-{i}: v" for i in range(101)))) == 431
    head, _ = parse(request(*(f"X-{i}: v" for i in range(90))))
    assert head is not None


def test_refusal_response_carries_the_refusals_headers():
    answer = refusal_response(UpgradeRefused(426, "version 13", [("Sec-WebSocket-Version", "13")]))
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer and answer.endswith(b"\r\n\r\nversion 13\n")
    assert b"WWW-Authenticate: Basic" in refusal_response(UpgradeRefused(401, "no"))


def test_accept_response_without_a_subprotocol_names_none():
    assert b"Sec-WebSocket-Protocol" not in accept_response("dGhlIHNhbXBsZSBub25jZQ==", None)
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in \
        accept_response("dGhlIHNhbXBsZSBub25jZQ==", "ocpp1.6")


def test_security_refused_is_the_one_refusal_type():
    refused = Refused(403, "banned", kind=Reason.REFUSED)
    assert isinstance(refused, UpgradeRefused) and isinstance(refused, HandshakeError)
    assert (refused.status, refused.reason, refused.kind, refused.permanent) == \
        (403, "banned", Reason.REFUSED, True)
    assert Refused().status == 401


# --- the listener, on loopback -------------------------------------------------------------------

@pytest.fixture
def server():
    seen: list[str] = []
    done = threading.Event()

    def on_connection(transport, station_id, req):
        text = transport.receive(timeout=WAIT)
        seen.append(text or "")
        done.set()
        transport.close()

    srv = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"], on_connection=on_connection)
    srv.start()
    srv.seen, srv.done = seen, done
    yield srv
    srv.stop()


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        return sock.recv(65536)


@pytest.mark.parametrize("extra", ["Host: other.example", "Bad@Name: x", "X{1}: y"])
def test_listener_refuses_what_h11_refuses(server, extra):
    assert exchange(server.port, request(extra)).startswith(b"HTTP/1.1 400 ")


def test_a_frame_right_behind_the_request_reaches_the_transport(server):
    payload = b'[2,"1","Heartbeat",{}]'
    mask = b"abcd"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    answer = exchange(server.port, request() + bytes((0x81, 0x80 | len(payload))) + mask + masked)
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert server.done.wait(WAIT)
    assert server.seen == [payload.decode()]


def test_charge_point_gives_up_on_the_ocpp_j_subprotocol_refusal():
    """A 101 without Sec-WebSocket-Protocol is permanent: one attempt, not a retry loop."""
    events = []
    csms = CSMS(versions=("1.6",), on_security_event=events.append)
    csms.start()
    cp = ChargePoint("CP_1", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1",
                     retry_first_connect=True,
                     backoff=BackOff(wait_minimum=0.01, random_range=0.01, repeat_times=0))
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            cp.connect()
        except BaseException as exc:   # the outcome under test
            outcome.append(exc)

    thread = threading.Thread(target=run, name="test-connect", daemon=True)
    try:
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive(), "the charge point kept reconnecting"
        assert len(outcome) == 1 and isinstance(outcome[0], HandshakeError)
        assert outcome[0].permanent
        assert wait_until(lambda: events)
        assert [(e.reason, e.close_code) for e in events] == [(Reason.NO_COMMON_SUBPROTOCOL, 1002)]
    finally:
        cp.close()
        thread.join(WAIT)
        csms.stop()
