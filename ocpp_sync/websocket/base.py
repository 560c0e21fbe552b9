"""What the connection layer needs from a websocket, whichever library carries it.

Both transports hand out whole messages: text as ``str``, binary as ``bytes``
(which OCPP-J does not allow: what one means is the protocol core's decision,
``RpcState.bad_message``, not a transport's). They make the same promises about
threads: any number of senders, one reader, and a close() that wakes that
reader and returns in bounded time. :class:`TransportBase` holds what they do
alike (keepalive, the size limit's verdict, the order of a close); a backend
supplies its frames: reading and writing them, pings, the close handshake.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_sync.errors import HandshakeError
from ocpp_sync.protocol.retry import Keepalive

__all__ = ["Transport", "TransportBase", "HandshakeError", "ConnectionRequest", "Headers"]

log = logging.getLogger("ocpp_sync.transport")

# Defaults shared by the transports (the charge point's and the CSMS's).
CLOSE_TIMEOUT = 2.0
PONG_TIMEOUT = 10.0
# A write that makes no progress for this long (the peer stopped reading) ends the connection.
WRITE_TIMEOUT = 10.0
# Parsing one message holds the CSMS's turn (and the GIL) and its objects take several times
# its bytes, so the bound is what one station may stall the others by (benchmarks/README.md,
# "Hostile station"). OCPP's largest bounded field is 32 KiB; reports and local lists can be
# split across messages. Raise it per CSMS or ChargePoint if yours are bigger.
MAX_MESSAGE_SIZE = 256 * 1024


def abort_socket(sock: Any) -> None:
    """Wake every thread blocked on ``sock``; the fd stays for its owner to close."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Transport(Protocol):
    """One open websocket carrying OCPP-J text frames."""

    subprotocol: str
    remote_address: str

    def send(self, text: str) -> None:
        """Send one text message; safe from any thread; raises ConnectionClosed."""

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """Next message (bytes for a binary one), or None once closed; TimeoutError only if a timeout was given."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Idempotent and bounded; wakes a receive() in progress."""


class TransportBase:
    """Keepalive, the size limit's verdict and the close sequence, done once for every backend.

    A backend calls :meth:`_keep_alive` from its reader before each wait, waits no
    later than :meth:`_wake_at`, tells ``self._keepalive.seen()`` of every frame,
    sets ``_too_large`` when it closes with 1009, and supplies ``_send_ping``,
    ``_abort``, ``_begin_close`` and ``_finish_close``.
    """

    subprotocol: str
    remote_address: str
    #: The code of the peer's close frame, once one came (None before, or without one).
    peer_close_code: int | None = None

    def __init__(self, subprotocol: str, remote_address: str, *, close_timeout: float,
                 keepalive: Keepalive | None, max_message_size: int | None) -> None:
        self.subprotocol = subprotocol
        self.remote_address = remote_address
        self._close_timeout = close_timeout
        self._keepalive = keepalive if keepalive is not None else Keepalive(None, PONG_TIMEOUT)
        self._pinging = self._keepalive.enabled
        self._max_size = max_message_size or None
        self._too_large = False

    def _wake_at(self, deadline: float | None) -> float | None:
        """When the reader must look up from its wait: the caller's deadline or the next ping's."""
        if not self._pinging:
            return deadline
        due = self._keepalive.deadline()
        return due if deadline is None or (due is not None and due < deadline) else deadline

    def _keep_alive(self) -> bool:
        """Ping a quiet peer; False once it is declared dead (the socket is then aborted)."""
        action = self._keepalive.check()
        if action == Keepalive.PING:
            return self._send_ping()
        if action == Keepalive.DEAD:
            log.warning("%s did not answer a ping within %g s: connection given up",
                        self.remote_address, self._keepalive.pong_timeout)
            self._abort()
            return False
        return True

    def _over_limit(self, size: int) -> bool:
        """A message of ``size`` bytes so far breaks the limit: the backend then closes with 1009."""
        if self._max_size is None or size <= self._max_size:
            return False
        log.warning("%s sent a message over %d bytes: closing (1009)", self.remote_address, self._max_size)
        self._too_large = True
        return True

    @property
    def message_too_large(self) -> bool:
        """True once the connection was closed (1009) for a message over the limit."""
        return self._too_large

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._begin_close(code, reason)
        self._finish_close()

    def _send_ping(self) -> bool:
        """Send a ping from the reader; False if the stream broke."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Wake every thread blocked on the socket; the stream is over."""
        raise NotImplementedError

    def _begin_close(self, code: int, reason: str) -> bool:
        """Send our close frame; False if closing had begun already."""
        raise NotImplementedError

    def _finish_close(self) -> None:
        """Wait (bounded) for the peer's close, then let the socket go."""
        raise NotImplementedError


class Headers(Mapping[str, str]):
    """HTTP request headers with case-insensitive lookup; repeated fields are joined with ", "."""

    def __init__(self, items: tuple[tuple[str, str], ...] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                value = f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Credentials must not reach logs through a repr.
        shown = {name: ("<hidden>" if name.lower() in ("authorization", "cookie") else value)
                 for name, value in self._items.values()}
        return f"Headers({shown!r})"


@dataclass(frozen=True)
class ConnectionRequest:
    """The HTTP upgrade request a station opened its connection with.

    ``certificate`` is the station's verified TLS client certificate
    (``ssl.SSLSocket.getpeercert()`` form), None without one: under profile 3
    the application may need more of it than the CN the handshake checked.
    """

    path: str
    station_id: str
    headers: Headers = field(repr=False)
    remote_address: str
    subprotocols: tuple[str, ...]
    subprotocol: str = ""
    query: str = ""
    certificate: dict[str, Any] | None = field(default=None, repr=False)
