"""The CSMS side: a standalone listener that speaks just enough HTTP to vet an upgrade.

The request is parsed and answered with ``websocket.handshake``, and judged by
``websocket.admission`` (the policy ``contrib.wsgi`` shares): every refusal is
a plain HTTP response, except a station offering none of our subprotocols,
which OCPP-J wants to get a 101 without one and an immediate close (1002).
Each connection runs in its own thread, for as long as ``on_connection`` runs,
and that thread also reads the websocket's frames: the listener uses only the
inline transport (inline.py), never simple-websocket,
whose own reader thread per connection would cost one more thread per station
and a thread hand-off per message (simple.py keeps it for websockets that
another server accepted). The connections of one listener share a turnstile
(``_turnstile``), so that under load their messages are served in the order
they came.

Security (see ``ocpp_sync.security``): the TLS handshake, when there is an
SSL context, runs in the connection's thread under the same deadline as the
HTTP request, so a silent or slow client holds its thread for at most
``handshake_timeout``; connections beyond the per-address cap are answered 429
by the accept thread itself and never get a thread.
"""
from __future__ import annotations

import collections
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ocpp_sync import security as _security
from ocpp_sync.errors import UpgradeRefused
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.runtime.limits import AcceptFailures
from ocpp_sync.scheduling.turnstile import Turnstile
from ocpp_sync.websocket.admission import MAX_CONNECTIONS_PER_ADDRESS, STRICT_STATION_IDS, Admission
from ocpp_sync.websocket.base import (
    CLOSE_TIMEOUT,
    MAX_MESSAGE_SIZE,
    PONG_TIMEOUT,
    WRITE_TIMEOUT,
    ConnectionRequest,
    Transport,
    abort_socket,
)
from ocpp_sync.websocket.handshake import (
    HANDSHAKE_TIMEOUT,
    MAX_HEADER_COUNT,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_LINE,
    RequestParser,
    check_upgrade,
    offered_subprotocols,
    read_request,
    refusal_response,
    station_id_from_path,
    upgrade_socket,
)
from ocpp_sync.websocket.inline import InlineTransport
from ocpp_sync.websocket.simple import adapt_simple_websocket

__all__ = ["WebSocketServer", "adapt_simple_websocket", "HANDSHAKE_TIMEOUT", "MAX_REQUEST_BYTES",
           "MAX_REQUEST_LINE", "MAX_HEADER_COUNT", "MAX_CONNECTIONS_PER_ADDRESS"]

log = logging.getLogger("ocpp_sync.transport")

MAX_PENDING_HANDSHAKES = 256
# Connections the kernel queues before accept(); Linux caps it at net.core.somaxconn. A
# fleet reconnecting after a restart arrives by the thousand a second.
BACKLOG = socket.SOMAXCONN
# Accepts per wake-up of the accept loop, so that one readiness event empties a burst.
_ACCEPT_BATCH = 64
# A connection over the per-address cap gets its 429 at once; its request is read and dropped
# (so closing does not reset the connection before the client reads the answer) for this long.
_TURN_AWAY_LINGER = 1.0

def _format_address(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WebSocketServer:
    """Thread-per-connection websocket listener for OCPP-J stations.

    ``on_connection(transport, station_id, request)`` runs in the connection's
    own thread; the connection lives as long as that call, and is closed when
    it returns. ``check_request(request)`` (optional) runs before the upgrade
    and refuses it by raising ``HandshakeError(status=..., reason=...)``, e.g.
    401 for bad credentials or 404 for an unknown station. With ``ping_interval``
    a quiet station is pinged and given up ``pong_timeout`` later if still silent;
    a message over ``max_message_size`` bytes closes the connection with 1009; a
    station that stops reading is given up once a write to it has made no
    progress for ``write_timeout`` seconds.

    Security options (``ocpp_sync.security`` documents their semantics):
    ``ssl_context`` serves TLS (profiles 2 and 3); ``authenticate`` and
    ``known_stations`` decide each station before the upgrade (401 / 404);
    ``strict_station_ids`` refuses ids that break the OCPP identity rules (400);
    ``on_security_event`` hears of every refusal; ``max_connections_per_address``
    caps the open and half-open connections of one IP address (429 beyond), and
    ``max_pending_handshakes`` those still in their handshake, from anywhere (503 beyond).
    """

    def __init__(self, host: str, port: int, *, subprotocols: Sequence[str],
                 on_connection: Callable[[Transport, str, ConnectionRequest], None],
                 check_request: Callable[[ConnectionRequest], None] | None = None,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_request_line: int = MAX_REQUEST_LINE,
                 max_header_count: int = MAX_HEADER_COUNT,
                 max_message_size: int | None = MAX_MESSAGE_SIZE,
                 ping_interval: float | None = None,
                 pong_timeout: float = PONG_TIMEOUT,
                 close_timeout: float = CLOSE_TIMEOUT,
                 write_timeout: float = WRITE_TIMEOUT,
                 backlog: int = BACKLOG,
                 ssl_context: ssl.SSLContext | None = None,
                 authenticate: _security.Authenticate | None = None,
                 known_stations: _security.KnownStations | None = None,
                 strict_station_ids: bool = STRICT_STATION_IDS,
                 on_security_event: _security.SecurityEventHook | None = None,
                 max_connections_per_address: int | None = MAX_CONNECTIONS_PER_ADDRESS,
                 max_pending_handshakes: int | None = MAX_PENDING_HANDSHAKES) -> None:
        if max_connections_per_address is not None and max_connections_per_address < 1:
            raise ValueError("max_connections_per_address must be at least 1 (or None)")
        self._admission = Admission(subprotocols, authenticate=authenticate,
                                    known_stations=known_stations,
                                    strict_station_ids=strict_station_ids,
                                    check_request=check_request)
        self.subprotocols: tuple[str, ...] = self._admission.subprotocols
        self._on_connection = on_connection
        self._handshake_timeout = handshake_timeout
        self._max_request_bytes = max_request_bytes
        self._max_request_line = max_request_line
        self._max_header_count = max_header_count
        self._max_message_size = max_message_size
        self._ssl_context = ssl_context
        self._on_security_event = on_security_event
        self._max_per_address = max_connections_per_address
        self._max_pending = max_pending_handshakes
        self._per_address: dict[str, int] = {}
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._close_timeout = close_timeout
        self._write_timeout = write_timeout
        self._turnstile = Turnstile()   # every connection of this listener takes turns in it
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=backlog)
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._started = False
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._accept_done = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._pending: set[socket.socket] = set()
        self._transports: set[InlineTransport] = set()

    def start(self) -> None:
        """Accept connections in a background thread ("ocpp-server-accept")."""
        self._claim()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="ocpp-server-accept",
                                               daemon=True)
        self._accept_thread.start()

    def serve_forever(self) -> None:
        """Accept connections in this thread until stop() (or KeyboardInterrupt); then stop."""
        self._claim()
        try:
            self._accept_loop()
        finally:
            self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every live connection (1001), join every thread."""
        deadline = time.monotonic() + timeout
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            pending = list(self._pending)
            transports = list(self._transports)
        if first:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
            log.info("stopping server on port %d", self.port)
        if self._accept_thread is not None and self._accept_thread is not threading.current_thread():
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        if not self._started:
            self._close_listener()
        for sock in pending:
            abort_socket(sock)
        if first:
            for transport in transports:
                transport._begin_close(1001, "server stopping")
        # Connection threads end once their on_connection returns; force the stragglers at half time.
        self._join_threads(time.monotonic() + (deadline - time.monotonic()) / 2)
        with self._lock:
            transports = list(self._transports)
            pending = list(self._pending)
        for transport in transports:
            transport._abort()
        for sock in pending:
            abort_socket(sock)
        left = self._join_threads(deadline)
        self._turnstile.close()
        if left:
            log.warning("server stop: %d connection thread(s) still running: %s", len(left),
                        ", ".join(t.name for t in left))

    def _claim(self) -> None:
        with self._lock:
            if self._started or self._stopping.is_set():
                raise RuntimeError("server already started or stopped")
            self._started = True

    def _join_threads(self, deadline: float) -> list[threading.Thread]:
        current = threading.current_thread()
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not current]
            if not threads:
                return []
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    return [t for t in threads if t.is_alive()]
                with self._lock:
                    self._threads.discard(thread)

    def _close_listener(self) -> None:
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        # Turned-away sockets (over a cap) -> when to drop them, all owned here; the linger is
        # the same for all, so the queue is in the order they are due.
        turned_away: dict[socket.socket, float] = {}
        due: collections.deque[tuple[float, socket.socket]] = collections.deque()
        failures = AcceptFailures()
        try:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            log.info("listening on %s:%d (%s)", self.host, self.port, ", ".join(self.subprotocols))
            while not self._stopping.is_set():
                timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        return
                    if key.fileobj is self._listener:
                        self._accept_some(failures, selector, turned_away, due)
                    else:
                        self._drain_turned_away(key.fileobj, selector, turned_away)
                now = time.monotonic()
                while due and due[0][0] <= now:
                    sock = due.popleft()[1]
                    if sock in turned_away:   # else dropped already, when its peer closed
                        self._drop_turned_away(sock, selector, turned_away)
        finally:
            for sock in list(turned_away):
                self._drop_turned_away(sock, selector, turned_away)
            selector.close()
            self._close_listener()

    def _accept_some(self, failures: AcceptFailures, selector: selectors.BaseSelector,
                     turned_away: dict[socket.socket, float],
                     due: collections.deque[tuple[float, socket.socket]]) -> None:
        """Accept what the backlog holds, up to ``_ACCEPT_BATCH`` (a reconnect storm fills it
        faster than one accept per wake-up empties it); out of descriptors, back off."""
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, addr = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # Waiting is what lets the stations already in leave and free descriptors.
                self._stopping.wait(failures.failed(exc))
                return
            failures.succeeded()
            refusal = self._spawn(conn, addr)
            if refusal is not None and self._turn_away(conn, addr, refusal, selector):
                when = time.monotonic() + _TURN_AWAY_LINGER
                turned_away[conn] = when
                due.append((when, conn))

    def _turn_away(self, conn: socket.socket, addr: Any, refusal: tuple[int, str],
                   selector: selectors.BaseSelector) -> bool:
        """Answer 429/503 without a thread: the answer fits the socket buffer, the request is
        drained (so that closing does not reset the connection before the answer is read).

        Under TLS no HTTP answer is possible without a handshake (which would need the thread
        we are refusing), so the connection is just closed.
        """
        remote = _format_address(addr)
        status: int | None = None if self._ssl_context is not None else refusal[0]
        reason = refusal[1]
        log.info("refused %s: %s %s", remote, status or "closed", reason)
        lingers = False
        if status is None:
            conn.close()
        else:
            try:
                conn.setblocking(False)
                conn.send(refusal_response(UpgradeRefused(status, reason, [("Retry-After", "10")])))
                conn.shutdown(socket.SHUT_WR)
                selector.register(conn, selectors.EVENT_READ)
                lingers = True
            except (OSError, ValueError):
                conn.close()
        _security.notify_security_event(self._on_security_event, _security.SecurityEvent(
            _security.Reason.TOO_MANY_CONNECTIONS, remote, status=status, detail=reason))
        return lingers

    def _drain_turned_away(self, sock: Any, selector: selectors.BaseSelector,
                           turned_away: dict[socket.socket, float]) -> None:
        try:
            if sock.recv(4096):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._drop_turned_away(sock, selector, turned_away)

    @staticmethod
    def _drop_turned_away(sock: socket.socket, selector: selectors.BaseSelector,
                          turned_away: dict[socket.socket, float]) -> None:
        turned_away.pop(sock, None)
        try:
            selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _spawn(self, conn: socket.socket, addr: Any) -> tuple[int, str] | None:
        """Start the connection's thread; or, over a cap, start nothing and return the
        (status, reason) to turn it away with."""
        remote = _format_address(addr)
        host = addr[0]
        thread = threading.Thread(target=self._serve, args=(conn, remote, host), daemon=True,
                                  name=f"ocpp-conn-{remote}")
        with self._lock:
            if self._stopping.is_set():
                conn.close()
                return None
            count = self._per_address.get(host, 0)
            if self._max_per_address is not None and count >= self._max_per_address:
                return 429, "too many connections from this address"
            if self._max_pending is not None and len(self._pending) >= self._max_pending:
                return 503, "too many connections in their handshake"
            self._per_address[host] = count + 1
            self._pending.add(conn)
            self._threads.add(thread)
        thread.start()
        return None

    def _serve(self, conn: socket.socket, remote: str, host: str) -> None:
        transport: InlineTransport | None = None
        deadline = time.monotonic() + self._handshake_timeout
        try:
            try:
                # A frame is one write, but over TLS one write per 16 KiB record: without
                # this, Nagle holds a frame's last record until the peer's delayed ACK.
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                certificate = None
                if self._ssl_context is not None:
                    conn = self._wrap_tls(conn)
                    if not self._tls_handshake(conn, remote, deadline):
                        return
                    certificate = conn.getpeercert() or None
                parser = RequestParser(self._max_request_bytes, self._max_request_line,
                                       self._max_header_count)
                request = self._request(read_request(conn, deadline, parser), remote, certificate)
                admitted = self._admission.admit(request)
            except UpgradeRefused as refusal:
                self._refuse(conn, remote, refusal)
                return
            except (OSError, EOFError) as exc:
                log.debug("%s went away during the handshake: %s", remote, exc)
                return
            if admitted is None:
                self._no_common_subprotocol(conn, request, parser.leftover)
                return
            request = admitted
            threading.current_thread().name = f"ocpp-conn-{request.station_id}"
            transport = self._upgrade(conn, request, parser.leftover)
            if transport is None:
                return
            with self._lock:
                self._pending.discard(conn)
                stopping = self._stopping.is_set()
                if not stopping:
                    self._transports.add(transport)
            if stopping:
                transport.close(1001, "server stopping")
                return
            log.info("%s connected as %r (%s)", remote, request.station_id, request.subprotocol)
            try:
                self._on_connection(transport, request.station_id, request)
            except Exception:
                log.exception("connection handler for %r failed", request.station_id)
            finally:
                transport.close()
            if transport.message_too_large:
                _security.notify_security_event(self._on_security_event, _security.SecurityEvent(
                    _security.Reason.MESSAGE_TOO_LARGE, remote, request.station_id, close_code=1009,
                    detail=f"a message over {self._max_message_size} bytes"))
        finally:
            with self._lock:
                self._pending.discard(conn)
                self._threads.discard(threading.current_thread())
                if transport is not None:
                    self._transports.discard(transport)
                left = self._per_address.get(host, 1) - 1
                if left > 0:
                    self._per_address[host] = left
                else:
                    self._per_address.pop(host, None)
            if transport is None:
                conn.close()

    def _wrap_tls(self, conn: socket.socket) -> ssl.SSLSocket:
        """The TLS socket that replaces ``conn`` (which it detaches) as the pending socket."""
        assert self._ssl_context is not None
        with self._lock:
            tls = self._ssl_context.wrap_socket(conn, server_side=True,
                                                do_handshake_on_connect=False)
            self._pending.discard(conn)
            self._pending.add(tls)
        return tls

    def _tls_handshake(self, tls: ssl.SSLSocket, remote: str, deadline: float) -> bool:
        """Run the TLS handshake within the deadline; on failure report it (no HTTP answer is
        possible) and return False."""
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("handshake deadline passed")
            tls.settimeout(remaining)
            tls.do_handshake()
            return True
        except TimeoutError:
            reason, detail = _security.Reason.HANDSHAKE_TIMEOUT, "no TLS handshake in time"
        except (ssl.SSLError, OSError) as exc:
            reason = _security.Reason.TLS_FAILED
            why = (getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
                   or str(exc) or type(exc).__name__)
            detail = f"TLS handshake failed: {why}"
        log.info("refused %s: %s", remote, detail)
        _security.notify_security_event(self._on_security_event, _security.SecurityEvent(
            reason, remote, detail=detail))
        return False

    @staticmethod
    def _request(head: Any, remote: str,
                 certificate: _security.PeerCertificate | None) -> ConnectionRequest:
        """The request the admission policy judges, once it is a websocket upgrade at all."""
        check_upgrade(head.method, head.http_version, head.headers)
        url = urlsplit(head.target)
        return ConnectionRequest(path=url.path, station_id=station_id_from_path(url.path),
                                 headers=head.headers, remote_address=remote,
                                 subprotocols=offered_subprotocols(head.headers),
                                 query=url.query, certificate=certificate)

    def _refuse(self, conn: socket.socket, remote: str, refusal: UpgradeRefused) -> None:
        log.info("refused %s: %d %s", remote, refusal.status, refusal.reason)
        try:
            conn.settimeout(self._close_timeout)
            conn.sendall(refusal_response(refusal))
            if refusal.status != 408:
                self._drain(conn)
        except OSError:
            pass
        _security.notify_security_event(self._on_security_event, _security.SecurityEvent(
            _security.Reason(refusal.kind), remote, refusal.station_id, status=refusal.status,
            detail=refusal.reason))

    def _no_common_subprotocol(self, conn: socket.socket, request: ConnectionRequest,
                               leftover: bytes) -> None:
        """OCPP-J's refusal of a subprotocol: a 101 without one, then a close (1002) at once."""
        reason = self._admission.no_common_subprotocol()
        log.info("refused %s: offered %s; %s", request.remote_address,
                 list(request.subprotocols), reason)
        transport = self._upgrade(conn, request, leftover)
        if transport is not None:
            transport.close(1002, reason)
        _security.notify_security_event(self._on_security_event, _security.SecurityEvent(
            _security.Reason.NO_COMMON_SUBPROTOCOL, request.remote_address, request.station_id,
            close_code=1002, detail=reason))

    def _drain(self, conn: socket.socket) -> None:
        """Read what the client still sends until it closes (bounded), so that closing our end
        does not reset the connection before the client has read the answer."""
        deadline = time.monotonic() + self._close_timeout
        left = self._max_request_bytes
        conn.shutdown(socket.SHUT_WR)
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            conn.settimeout(remaining)
            chunk = conn.recv(4096)
            if not chunk:
                return
            left -= len(chunk)

    def _upgrade(self, conn: socket.socket, request: ConnectionRequest,
                 leftover: bytes) -> InlineTransport | None:
        try:
            return upgrade_socket(conn, request.headers["Sec-WebSocket-Key"], request.subprotocol,
                                  request.remote_address, handshake_timeout=self._handshake_timeout,
                                  leftover=leftover, close_timeout=self._close_timeout,
                                  write_timeout=self._write_timeout,
                                  keepalive=Keepalive(self._ping_interval, self._pong_timeout),
                                  max_message_size=self._max_message_size, turnstile=self._turnstile)
        except OSError as exc:
            log.warning("websocket upgrade for %s failed: %s", request.remote_address, exc)
            return None
