"""The charge point side: a websocket-client ``WebSocket`` used directly, no threads of its own.

Frames are read with ``recv_frame`` and control frames handled here, so every
write (messages, pongs, the close reply) goes through websocket-client's one
send lock, and a close frame is never answered twice.
"""
from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import websocket
from websocket import ABNF

from .. import security as _security
from .._backoff import Keepalive
from .._errors import ConnectionClosed
from .base import HandshakeError, Transport

__all__ = ["connect", "station_url"]

log = logging.getLogger("ocpp_sync.transport")

# Bounds how long close() waits for the peer's close frame before it drops the TCP connection.
CLOSE_TIMEOUT = 2.0


def station_url(url: str, station_id: str) -> str:
    """``url`` with the percent-encoded station id as one more path segment."""
    if not station_id:
        raise ValueError("station_id must not be empty")
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/" + quote(station_id, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _safe_url(url: str) -> str:
    """The URL without user info, for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def connect(url: str, station_id: str, *, subprotocols: Sequence[str],
            headers: Mapping[str, str] | None = None, timeout: float = 10.0,
            sslopt: dict[str, Any] | None = None, close_timeout: float = CLOSE_TIMEOUT,
            ping_interval: float | None = None, pong_timeout: float = 10.0,
            password: str | bytes | None = None,
            ssl_context: ssl.SSLContext | None = None) -> Transport:
    """Open the station's websocket to the CSMS at ``url``.

    Raises HandshakeError for every way the connection can fail to open; its
    ``status`` is the HTTP status when the server refused the upgrade.
    ``timeout`` bounds the TCP connect and the handshake, and later any single
    write or the rest of a frame that has started to arrive. With ``ping_interval``
    a quiet server is pinged, and given up ``pong_timeout`` later if still silent.

    ``password`` sends ``Authorization: Basic`` with the station id as user
    (security profiles 1 and 2). ``ssl_context`` is the TLS context for a
    ``wss://`` URL (see ``security.client_ssl_context``); without it (and without
    ``sslopt``) a ``wss://`` URL is verified against the system's CAs, host name
    included, with TLS 1.2 at least.
    """
    if not subprotocols:
        raise ValueError("at least one subprotocol is required")
    target = station_url(url, station_id)
    shown = _safe_url(target)
    secure = urlsplit(target).scheme.lower() == "wss"
    if ssl_context is not None:
        if sslopt is not None:
            raise ValueError("give ssl_context or sslopt, not both")
        if not secure:
            raise ValueError("ssl_context needs a wss:// URL")
        sslopt = {"context": ssl_context}
    elif secure and sslopt is None:
        sslopt = {"context": _security.client_ssl_context()}
    header = [f"{name}: {value}" for name, value in (headers or {}).items()
              if password is None or name.lower() != "authorization"]
    if password is not None:
        header.append("Authorization: " + _security.basic_authorization(station_id, password))
    # websocket-client follows redirects with the same headers: never hand the station's
    # credentials to wherever a redirect points.
    credentials = any(line.lower().startswith("authorization:") for line in header)
    # UTF-8 is checked by bytes.decode in receive(): websocket-client's own check is pure Python.
    ws = websocket.WebSocket(sslopt=sslopt, enable_multithread=True, skip_utf8_validation=True)
    try:
        ws.connect(target, timeout=timeout, subprotocols=list(subprotocols), header=header,
                   suppress_origin=True, **({"redirect_limit": 0} if credentials else {}))
    except websocket.WebSocketBadStatusException as exc:
        reason = exc.status_message or ""
        body = (exc.resp_body or b"").decode("utf-8", "replace").strip()[:200]
        raise HandshakeError(f"{shown}: server refused the websocket upgrade with HTTP "
                             f"{exc.status_code} {reason}".rstrip() + (f": {body}" if body else ""),
                             status=exc.status_code, reason=body or reason) from exc
    except (websocket.WebSocketException, OSError) as exc:
        ws.shutdown()
        raise HandshakeError(f"{shown}: could not open the websocket: {_describe(exc)}") from exc
    chosen = ws.getsubprotocol()
    match = next((p for p in subprotocols if chosen is not None and p.lower() == chosen.lower()), None)
    if match is None:
        ws.shutdown()
        raise HandshakeError(f"{shown}: server chose subprotocol {chosen!r}, not one of "
                             f"{list(subprotocols)}", permanent=True)
    sock = ws.sock
    assert sock is not None   # connect() returned, so the socket is there
    host, port = sock.getpeername()[:2]
    log.info("connected to %s as %r (%s)", shown, station_id, match)
    return _ClientTransport(ws, match, f"{host}:{port}", close_timeout,
                            Keepalive(ping_interval, pong_timeout))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException)):
        return "timed out"
    return str(exc) or type(exc).__name__


class _ClientTransport:
    """Transport over one connected websocket-client ``WebSocket``."""

    def __init__(self, ws: websocket.WebSocket, subprotocol: str, remote_address: str,
                 close_timeout: float, keepalive: Keepalive | None = None) -> None:
        self.subprotocol = subprotocol
        self.remote_address = remote_address
        self._ws = ws
        self._sock: socket.socket = ws.sock  # type: ignore[assignment]  # connected
        self._close_timeout = close_timeout
        self._keepalive = keepalive if keepalive is not None else Keepalive(None, 10.0)  # reader's own
        # websocket-client's send lock, made reentrant so close() can hold it with a deadline
        # and still call send_close(); every write of this transport goes through it.
        self._write_lock = threading.RLock()
        ws.lock = self._write_lock  # type: ignore[assignment]
        self._read_lock = threading.Lock()   # held by the one reader; close() uses it to know one is there
        self._state_lock = threading.Lock()
        self._closing = False                # a close frame went out (ours, or our answer to the peer's)
        self._close_called = False
        self._finished = threading.Event()   # the peer's close frame came, or the stream broke
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ)

    def send(self, text: str) -> None:
        if self._closing or self._finished.is_set():
            raise ConnectionClosed("connection is closed")
        try:
            with self._write_lock:
                if self._closing:
                    raise ConnectionClosed("connection is closed")
                self._ws.send(text, ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError) as exc:
            # A frame may be half written: the stream is unusable, so end it and wake the reader.
            self._broken(exc)
            self._shutdown()
            raise ConnectionClosed(f"send failed: {_describe(exc)}") from exc

    def receive(self, timeout: float | None = None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._read_lock:
            while True:
                if self._finished.is_set():
                    return None
                if not self._keep_alive():
                    return None
                ping_due = self._keepalive.deadline()
                wait_until = deadline if ping_due is None else \
                    ping_due if deadline is None else min(deadline, ping_due)
                if not self._wait_readable(wait_until):
                    if self._finished.is_set():
                        return None
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError("no message within the timeout")
                    continue
                text = self._read_one()
                # Once our close frame is out, keep reading only to see the peer's answer to it.
                if text is not None and not self._closing:
                    return text

    def _keep_alive(self) -> bool:
        """Ping a quiet server; False once it is declared dead (the stream is then shut down)."""
        action = self._keepalive.check()
        if action == Keepalive.PING:
            try:
                with self._write_lock:
                    if not self._closing:
                        self._ws.ping()
            except (websocket.WebSocketException, OSError) as exc:
                self._broken(exc)
                self._shutdown()
                return False
        elif action == Keepalive.DEAD:
            log.warning("%s did not answer a ping within %g s: connection given up",
                        self.remote_address, self._keepalive.pong_timeout)
            self._finished.set()
            self._shutdown()
            return False
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        with self._state_lock:
            if self._close_called:
                return
            self._close_called = True
            answered = self._closing        # the peer's close frame already came and was answered
            self._closing = True
        if not answered and not self._finished.is_set() and \
                self._write_lock.acquire(timeout=self._close_timeout):
            try:
                self._ws.send_close(code, reason.encode("utf-8")[:123])
            except (websocket.WebSocketException, OSError):
                self._finished.set()
            finally:
                self._write_lock.release()
        if self._read_lock.acquire(blocking=False):
            # No reader: wait for the peer's close frame here.
            try:
                self._drain_until_closed(time.monotonic() + self._close_timeout)
            finally:
                self._read_lock.release()
        else:
            self._finished.wait(self._close_timeout)
        self._shutdown()
        # A reader woken by the shutdown leaves receive() promptly; the fd goes once it has.
        if self._read_lock.acquire(timeout=self._close_timeout):
            self._read_lock.release()
        self._selector.close()
        self._ws.shutdown()
        self._sock.close()
        log.info("connection to %s closed (%s)", self.remote_address, code)

    def _wait_readable(self, deadline: float | None) -> bool:
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        if deadline is None:
            while not self._selector.select(None):
                pass
            return True
        # A timeout of 0 still polls, so data already here is returned rather than a timeout.
        return bool(self._selector.select(max(0.0, deadline - time.monotonic())))

    def _read_one(self) -> str | None:
        """Read one frame; the text of a complete text message, else None."""
        ws = self._ws
        try:
            frame = ws.recv_frame()
            self._keepalive.seen()
            opcode = frame.opcode
            if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                ws.cont_frame.validate(frame)
                ws.cont_frame.add(frame)
                if not frame.fin:
                    return None
                opcode, frame = ws.cont_frame.extract(frame)
                if opcode == ABNF.OPCODE_TEXT:
                    data = frame.data
                    return data.decode("utf-8") if isinstance(data, bytes) else data
                log.warning("ignored a binary message from %s (%d bytes): OCPP-J is text only",
                            self.remote_address, len(frame.data))
            elif opcode == ABNF.OPCODE_PING:
                with self._write_lock:
                    if not self._closing:
                        ws.pong(frame.data)
            elif opcode == ABNF.OPCODE_CLOSE:
                self._peer_closed(frame)
        except (websocket.WebSocketException, OSError, UnicodeDecodeError) as exc:
            self._broken(exc)
        return None

    def _peer_closed(self, frame: ABNF) -> None:
        data = frame.data if isinstance(frame.data, bytes) else frame.data.encode("utf-8")
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
        with self._state_lock:
            answer = not self._closing
            self._closing = True
        if answer:
            log.info("%s closed the connection (%s)", self.remote_address, code)
            try:
                with self._write_lock:
                    self._ws.send_close(code if code != 1005 else 1000)
            except (websocket.WebSocketException, OSError):
                pass
        self._finished.set()

    def _drain_until_closed(self, deadline: float) -> None:
        while not self._finished.is_set() and self._wait_readable(deadline):
            self._read_one()

    def _broken(self, exc: BaseException) -> None:
        if not (self._closing or self._finished.is_set()):
            log.warning("connection to %s lost: %s", self.remote_address, _describe(exc))
        self._finished.set()

    def _shutdown(self) -> None:
        try:
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        except OSError:
            pass
