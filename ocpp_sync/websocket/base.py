"""What the connection layer needs from a websocket, whichever library carries it.

Both transports hand out text messages only (OCPP-J is JSON over text frames)
and make the same promises about threads: any number of senders, one reader,
and a close() that wakes that reader and returns in bounded time.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_sync.errors import HandshakeError

__all__ = ["Transport", "HandshakeError", "ConnectionRequest", "Headers"]

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

    def receive(self, timeout: float | None = None) -> str | None:
        """Next text message, or None once closed; TimeoutError only if a timeout was given."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Idempotent and bounded; wakes a receive() in progress."""


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
