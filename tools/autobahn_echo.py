"""Echo endpoints on our websocket transports, for the Autobahn|Testsuite only (tools/autobahn.py).

Not part of the library: OCPP-J is text only, so the library never sends a binary message
(the transports hand received ones up as bytes, and the connection refuses them), and the
listener insists on an OCPP subprotocol. The suite checks the websocket layer itself, with
binary echoes and no subprotocol, so this module bends both rules from the outside:
``EchoTransport`` is the inline transport that can send binary messages too, ``EchoServer``
is the CSMS's listener accepting an upgrade that names no subprotocol.
Everything else (the handshake checks, frame parsing, closing, threads) is the library's.

    python tools/autobahn_echo.py server --port 9001
    python tools/autobahn_echo.py client --url ws://127.0.0.1:9001/runCase?case=1&agent=ocpp_sync
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import threading
from typing import Any

import websocket

from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.runtime.listener import WebSocketServer
from ocpp_sync.websocket.base import ConnectionRequest, Transport, abort_socket
from ocpp_sync.websocket.handshake import accept_response
from ocpp_sync.websocket.inline import InlineTransport, _frame

log = logging.getLogger("ocpp_sync.tools.autobahn")

_BINARY = 0x2
# Stands in for "no subprotocol" while the listener vets the request; never sent back.
_NONE = "x-autobahn-echo"
# Autobahn's largest messages are 16 MiB (cases 9.*); the library's default limit is 4 MiB.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024


class EchoTransport(InlineTransport):
    """The inline transport, able to send binary messages as well."""

    def send_bytes(self, data: bytes) -> None:
        """Send one binary message, under the same rules as send()."""
        frame = _frame(_BINARY, data, self._client)
        with self._write_lock:
            if self._closing or self._finished.is_set():
                raise ConnectionClosed("connection is closed")
            try:
                self._write(frame)
            except OSError as exc:
                self._finished.set()
                abort_socket(self._sock)
                raise ConnectionClosed(f"send failed: {exc or type(exc).__name__}") from exc


def echo(transport: EchoTransport) -> int:
    """Send every message back as it came (text as text, binary as binary) until the peer
    closes; the number of messages echoed."""
    count = 0
    while True:
        message: str | bytes | None = transport.receive()
        if message is None:
            return count
        try:
            if isinstance(message, bytes):
                transport.send_bytes(message)
            else:
                transport.send(message)
        except ConnectionClosed:
            return count
        count += 1


class EchoServer(WebSocketServer):
    """The CSMS's listener, echoing on every connection; an upgrade with no
    ``Sec-WebSocket-Protocol`` is accepted, and answered without one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        options.setdefault("max_message_size", MAX_MESSAGE_SIZE)
        options.setdefault("max_connections_per_address", None)
        super().__init__(host, port, subprotocols=[_NONE], on_connection=self._echo, **options)

    @staticmethod
    def _echo(transport: Transport, station_id: str, request: ConnectionRequest) -> None:
        assert isinstance(transport, EchoTransport)
        echo(transport)

    def _request(self, head: Any, remote: str, certificate: Any) -> ConnectionRequest:  # type: ignore[override]
        request = super()._request(head, remote, certificate)
        if request.subprotocols:
            return request
        return dataclasses.replace(request, subprotocols=(_NONE,))

    def _upgrade(self, conn: socket.socket, request: ConnectionRequest,
                 leftover: bytes) -> InlineTransport | None:
        subprotocol = "" if request.subprotocol == _NONE else request.subprotocol
        try:
            conn.settimeout(self._handshake_timeout)
            conn.sendall(accept_response(request.headers["Sec-WebSocket-Key"], subprotocol or None))
            conn.settimeout(None)
        except OSError as exc:
            log.warning("websocket upgrade for %s failed: %s", request.remote_address, exc)
            return None
        return EchoTransport(conn, subprotocol, request.remote_address,
                             close_timeout=self._close_timeout, write_timeout=self._write_timeout,
                             max_message_size=self._max_message_size, turnstile=self._turnstile,
                             leftover=leftover)


def open_client(url: str, *, timeout: float = 10.0) -> EchoTransport:
    """Open ``url`` as the charge point does (websocket-client's handshake, then the inline
    transport in client mode), with no subprotocol and no station id appended."""
    ws = websocket.WebSocket()
    ws.connect(url, timeout=timeout, suppress_origin=True)
    sock = ws.sock
    assert sock is not None
    host, port = sock.getpeername()[:2]
    sock.settimeout(None)
    return EchoTransport(sock, "", f"{host}:{port}", client=True, write_timeout=timeout,
                         keepalive=Keepalive(None, 10.0), max_message_size=MAX_MESSAGE_SIZE)


def echo_client(url: str, *, timeout: float = 10.0) -> int:
    """Connect to ``url``, echo until the server closes, close; the messages echoed."""
    transport = open_client(url, timeout=timeout)
    try:
        return echo(transport)
    finally:
        transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server", help="echo server on our listener")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=9001)
    client = sub.add_parser("client", help="echo client on our client transport")
    client.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "client":
        print(echo_client(args.url), "messages echoed")
        return 0
    echo_server = EchoServer(args.host, args.port)
    echo_server.start()
    print(f"echoing on ws://{args.host}:{echo_server.port}/echo (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        echo_server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
