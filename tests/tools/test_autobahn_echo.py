"""The Autobahn echo endpoints (tools/autobahn_echo.py) on loopback, and the summary's verdicts.

tools/autobahn.py needs the suite (Python 2) and minutes; these check in a second that the
echo still works on the transports as they are, since it reaches into their internals.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from support.raw import WAIT

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import autobahn  # noqa: E402
import autobahn_echo  # noqa: E402


@pytest.fixture
def server() -> Iterator[autobahn_echo.EchoServer]:
    echo_server = autobahn_echo.EchoServer("127.0.0.1", 0)
    echo_server.start()
    yield echo_server
    echo_server.stop()


@pytest.mark.usefixtures("no_leftover_threads")
def test_the_server_accepts_no_subprotocol_and_echoes_text_and_binary(
        server: autobahn_echo.EchoServer) -> None:
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/echo", timeout=WAIT)
    try:
        assert ws.getsubprotocol() is None
        assert "sec-websocket-protocol" not in ws.getheaders()
        ws.send("h\u00e9llo")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, "h\u00e9llo".encode())
        big = bytes(range(256)) * 400   # over 64 KiB: parsed by wsproto, not the fast path
        ws.send_binary(big)
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, big)
    finally:
        ws.close()


@pytest.mark.usefixtures("no_leftover_threads")
def test_the_client_transport_sends_and_keeps_binary(server: autobahn_echo.EchoServer) -> None:
    transport = autobahn_echo.open_client(f"ws://127.0.0.1:{server.port}/echo")
    try:
        transport.send_bytes(b"\x00\xff" * 10)
        assert transport.receive(timeout=WAIT) == b"\x00\xff" * 10
        transport.send("text")
        assert transport.receive(timeout=WAIT) == "text"
    finally:
        transport.close()


@pytest.mark.parametrize(("behavior", "close", "expected"), [
    ("OK", "OK", "OK"),
    ("NON-STRICT", "OK", "NON-STRICT"),
    ("OK", "INFORMATIONAL", "INFORMATIONAL"),
    ("UNIMPLEMENTED", "OK", "UNIMPLEMENTED"),
    ("OK", "WRONG CODE", "FAILED"),
    ("OK", "UNCLEAN", "FAILED"),
    ("FAILED", "OK", "FAILED"),
])
def test_a_case_counts_as_the_worse_of_its_two_verdicts(behavior: str, close: str,
                                                         expected: str) -> None:
    assert autobahn.verdict({"behavior": behavior, "behaviorClose": close}) == expected
