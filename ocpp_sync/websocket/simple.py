"""A Transport over a websocket that another server accepted with simple-websocket.

For hosting the CSMS inside an existing web server (flask-sock, gunicorn through
``ocpp_sync.contrib``): that server owns the HTTP upgrade, and simple-websocket
reads frames in a thread of its own, which hands each message to our reader.
The standalone ``WebSocketServer`` does not use this module (see runtime/listener.py).

Two entry points: :func:`adapt_simple_websocket` for a websocket the other server
upgraded itself, and :func:`accept_socket` for a request we vetted (``contrib.wsgi``):
we write the 101 (``websocket.handshake``), and simple-websocket only reads frames.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

import simple_websocket
from simple_websocket.ws import Base as _SimpleBase
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import Ping
from wsproto.utilities import LocalProtocolError

from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.websocket.base import CLOSE_TIMEOUT, MAX_MESSAGE_SIZE, PONG_TIMEOUT, Transport, abort_socket
from ocpp_sync.websocket.handshake import accept_response

__all__ = ["adapt_simple_websocket", "accept_socket", "MAX_MESSAGE_SIZE", "RECEIVE_BYTES"]

log = logging.getLogger("ocpp_sync.transport")

# Large reads: with TLS and a ping interval, simple-websocket only notices a message bigger than
# one read at the next ping tick.
RECEIVE_BYTES = 64 * 1024

_WS_ERRORS = (simple_websocket.ConnectionClosed, simple_websocket.ConnectionError, OSError,
              LocalProtocolError)


class _LockedSocket:
    """The socket simple-websocket writes through, with one lock for every write.

    simple-websocket 1.1.0 writes with ``socket.send`` (which may write part of a frame) from the
    caller's thread (messages, close) and from its own thread (pongs, pings, close replies), with
    no lock; here each write is a whole ``sendall`` under one lock, so frames never interleave.
    """

    def __init__(self, sock: Any) -> None:
        self.raw = sock
        self.lock = threading.RLock()

    def send(self, data: bytes) -> int:
        with self.lock:
            self.raw.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _AcceptedWebSocket(_SimpleBase):  # type: ignore[misc]
    """simple-websocket on a socket whose 101 is already written: frames only, no handshake."""

    def __init__(self, sock: _LockedSocket, subprotocol: str, leftover: bytes,
                 **options: Any) -> None:
        self._accepted = subprotocol
        self._leftover = leftover
        super().__init__(sock, connection_type=ConnectionType.SERVER, **options)

    def handshake(self) -> None:
        # wsproto's frame-level connection: the upgrade it would otherwise parse is done.
        self.ws = Connection(ConnectionType.SERVER)
        self.subprotocol = self._accepted or None
        self.connected = True
        if self._leftover:
            self.ws.receive_data(self._leftover)
            self.connected = self._handle_events()


class _SimpleWebSocketTransport:
    """Transport over an accepted ``simple_websocket.Server``."""

    def __init__(self, ws: simple_websocket.Server, subprotocol: str, remote_address: str,
                 close_timeout: float = CLOSE_TIMEOUT, keepalive: Keepalive | None = None) -> None:
        self.subprotocol = subprotocol
        self.remote_address = remote_address
        if not isinstance(ws.sock, _LockedSocket):
            ws.sock = _LockedSocket(ws.sock)
        self._ws = ws
        self._sock: _LockedSocket = ws.sock
        self._close_timeout = close_timeout
        # The reader's own; simple-websocket's ping would use the interval as the pong timeout.
        self._keepalive = keepalive if keepalive is not None else Keepalive(None, PONG_TIMEOUT)
        self._state_lock = threading.Lock()
        self._closing = False
        self._closed = False

    def send(self, text: str) -> None:
        ws = self._ws
        try:
            with self._sock.lock:
                if self._closing or not ws.connected:
                    raise ConnectionClosed("connection is closed")
                ws.send(str(text))
        except _WS_ERRORS as exc:
            # A frame may be half written: the stream is unusable.
            ws.connected = False
            abort_socket(self._sock.raw)
            raise ConnectionClosed(f"send failed: {exc or type(exc).__name__}") from exc

    def receive(self, timeout: float | None = None) -> str | None:
        ws = self._ws
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._keep_alive():
                return None
            ping_due = self._keepalive.deadline()
            wait_until = deadline if ping_due is None else \
                ping_due if deadline is None else min(deadline, ping_due)
            remaining = None if wait_until is None else max(0.0, wait_until - time.monotonic())
            try:
                data: str | bytes | None = ws.receive(remaining)
            except simple_websocket.ConnectionClosed:
                return None
            if self._closing:
                return None
            if data is None:
                if not ws.connected and not ws.input_buffer:
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("no message within the timeout")
                continue
            self._keepalive.seen()
            if isinstance(data, (bytes, bytearray)):
                log.warning("ignored a binary message from %s (%d bytes): OCPP-J is text only",
                            self.remote_address, len(data))
                continue
            return data

    def _keep_alive(self) -> bool:
        """Ping a quiet station; False once it is declared dead (the socket is then aborted)."""
        ws = self._ws
        if ws.pong_received:  # set by simple-websocket's thread; a pong does not wake receive()
            self._keepalive.seen()
            ws.pong_received = False
        action = self._keepalive.check()
        if action == Keepalive.PING:
            try:
                with self._sock.lock:
                    if not self._closing and ws.connected:
                        self._sock.raw.sendall(ws.ws.send(Ping()))
            except _WS_ERRORS:
                ws.connected = False
                abort_socket(self._sock.raw)
                return False
        elif action == Keepalive.DEAD:
            log.warning("%s did not answer a ping within %g s: connection given up",
                        self.remote_address, self._keepalive.pong_timeout)
            ws.connected = False
            abort_socket(self._sock.raw)
            return False
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._begin_close(code, reason)
        self._finish_close()

    def _begin_close(self, code: int, reason: str) -> bool:
        """Send our close frame and wake the reader; False if closing had already begun."""
        with self._state_lock:
            if self._closing:
                return False
            self._closing = True
        ws = self._ws
        if self._sock.lock.acquire(timeout=self._close_timeout):
            try:
                if ws.connected:
                    ws.close(code, reason.encode("utf-8")[:123].decode("utf-8", "ignore") or None)
            except _WS_ERRORS:
                pass
            finally:
                self._sock.lock.release()
        else:
            # A write is stuck on a peer that does not read: no clean close is possible.
            abort_socket(self._sock.raw)
        ws.connected = False
        ws.event.set()
        return True

    def _finish_close(self) -> None:
        """Wait (bounded) for the peer's close frame to end simple-websocket's thread."""
        thread = self._ws.thread
        if thread is not threading.current_thread():
            thread.join(self._close_timeout)
            if thread.is_alive():
                abort_socket(self._sock.raw)
                thread.join(self._close_timeout)
            if thread.is_alive():
                log.warning("websocket thread %s did not end", thread.name)
        try:
            self._sock.raw.close()
        except OSError:
            pass
        with self._state_lock:
            first = not self._closed
            self._closed = True
        if first:
            log.info("connection from %s closed", self.remote_address)

    def _abort(self) -> None:
        abort_socket(self._sock.raw)

    @property
    def message_too_large(self) -> bool:
        """True once simple-websocket closed the connection (1009) for a message over the limit."""
        ws = self._ws
        return bool(ws.max_message_size) and ws.incoming_message_len > ws.max_message_size


def adapt_simple_websocket(ws: simple_websocket.Server, subprotocol: str, remote_address: str,
                           *, close_timeout: float = CLOSE_TIMEOUT,
                           ping_interval: float | None = None,
                           pong_timeout: float = PONG_TIMEOUT) -> Transport:
    """Serve a websocket some other server accepted (e.g. a flask-sock route) as a Transport.

    Its socket is wrapped so that every write, including those of its own thread, shares one lock.
    Accept it with simple-websocket's own ``ping_interval`` off when passing one here.
    """
    return _SimpleWebSocketTransport(ws, subprotocol, remote_address, close_timeout,
                                     Keepalive(ping_interval, pong_timeout))


def accept_socket(sock: Any, key: str, subprotocol: str, remote_address: str, *,
                  leftover: bytes = b"", max_message_size: int | None = MAX_MESSAGE_SIZE,
                  close_timeout: float = CLOSE_TIMEOUT, ping_interval: float | None = None,
                  pong_timeout: float = PONG_TIMEOUT, thread_name: str | None = None) -> Transport:
    """Answer a vetted upgrade request on ``sock`` with 101 and serve it as a Transport.

    ``key`` is the request's ``Sec-WebSocket-Key``; an empty ``subprotocol`` answers
    without one (the caller then closes: OCPP-J's refusal of the offered ones).
    ``leftover`` is what the server read past the request head, read first; a
    message over ``max_message_size`` bytes closes with 1009; simple-websocket's
    reader thread is named ``thread_name``; the other options are
    :func:`adapt_simple_websocket`'s. Raises OSError if the 101 cannot be written.
    """
    locked = _LockedSocket(sock)
    locked.sendall(accept_response(key, subprotocol or None))
    thread_class = functools.partial(threading.Thread, name=thread_name, daemon=True)
    ws = _AcceptedWebSocket(locked, subprotocol, leftover, receive_bytes=RECEIVE_BYTES,
                            max_message_size=max_message_size, thread_class=thread_class)
    return adapt_simple_websocket(ws, subprotocol, remote_address, close_timeout=close_timeout,
                                  ping_interval=ping_interval, pong_timeout=pong_timeout)
