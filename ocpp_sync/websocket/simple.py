"""A Transport over a websocket that another server accepted with simple-websocket.

For hosting the CSMS inside an existing web app that upgrades the request itself
(a flask-sock route, ``CSMS.handle``): simple-websocket reads frames in a thread
of its own, which hands each message to our reader. A socket we upgrade
ourselves (the listener's, ``contrib.wsgi``'s) is read by ``websocket.inline``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import simple_websocket
from wsproto.events import Ping
from wsproto.utilities import LocalProtocolError

from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.websocket.base import (
    CLOSE_TIMEOUT,
    MAX_MESSAGE_SIZE,
    PONG_TIMEOUT,
    Transport,
    TransportBase,
    abort_socket,
)

__all__ = ["adapt_simple_websocket", "MAX_MESSAGE_SIZE"]

log = logging.getLogger("ocpp_sync.transport")

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


class _SimpleWebSocketTransport(TransportBase):
    """Transport over an accepted ``simple_websocket.Server``."""

    def __init__(self, ws: simple_websocket.Server, subprotocol: str, remote_address: str,
                 close_timeout: float = CLOSE_TIMEOUT, keepalive: Keepalive | None = None,
                 max_message_size: int | None = MAX_MESSAGE_SIZE) -> None:
        # The reader's own keepalive; simple-websocket's ping would use the interval as the pong timeout.
        super().__init__(subprotocol, remote_address, close_timeout=close_timeout,
                         keepalive=keepalive, max_message_size=max_message_size)
        # simple-websocket assembles messages and closes with 1009 past its own limit: it gets ours.
        ws.max_message_size = self._max_size
        if not isinstance(ws.sock, _LockedSocket):
            ws.sock = _LockedSocket(ws.sock)
        self._ws = ws
        self._sock: _LockedSocket = ws.sock
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

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        ws = self._ws
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if ws.pong_received:  # set by simple-websocket's thread; a pong does not wake receive()
                self._keepalive.seen()
                ws.pong_received = False
            if not self._keep_alive():
                return None
            wait_until = self._wake_at(deadline)
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
            return bytes(data) if isinstance(data, (bytes, bytearray)) else data

    def _send_ping(self) -> bool:
        ws = self._ws
        try:
            with self._sock.lock:
                if not self._closing and ws.connected:
                    self._sock.raw.sendall(ws.ws.send(Ping()))
            return True
        except _WS_ERRORS:
            self._abort()
            return False

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
        self._ws.connected = False
        abort_socket(self._sock.raw)

    @property
    def message_too_large(self) -> bool:
        """True once simple-websocket closed the connection (1009) for a message over the limit."""
        return self._max_size is not None and self._ws.incoming_message_len > self._max_size


def adapt_simple_websocket(ws: simple_websocket.Server, subprotocol: str, remote_address: str,
                           *, close_timeout: float = CLOSE_TIMEOUT,
                           ping_interval: float | None = None,
                           pong_timeout: float = PONG_TIMEOUT,
                           max_message_size: int | None = MAX_MESSAGE_SIZE) -> Transport:
    """Serve a websocket some other server accepted (e.g. a flask-sock route) as a Transport.

    Its socket is wrapped so that every write, including those of its own thread, shares one lock.
    Accept it with simple-websocket's own ``ping_interval`` off when passing one here.
    ``max_message_size`` replaces the websocket's own limit (None: no limit): a bigger
    message closes the connection with 1009.
    """
    return _SimpleWebSocketTransport(ws, subprotocol, remote_address, close_timeout,
                                     Keepalive(ping_interval, pong_timeout), max_message_size)
