"""The HTTP side of the websocket upgrade, shared by our listener and the WSGI endpoint.

h11 parses the request head (RFC 9110 tokens, one ``Host``, line syntax), so the
standalone listener answers a malformed request as any HTTP server would; the
websocket rules on top of it (GET, HTTP/1.1, ``Upgrade``, version 13, a key)
and the answers (101, or a refusal with a short text body) are here once, for
the listener and for ``contrib.wsgi``, whose server parsed the request itself.

Reading stops at the end of the head; whatever came with it (a frame sent right
behind the request) is returned as ``leftover`` for the transport to read first.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

import h11

from ocpp_sync.errors import UpgradeRefused
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.scheduling.turnstile import Turnstile
from ocpp_sync.websocket.base import CLOSE_TIMEOUT, WRITE_TIMEOUT, Headers
from ocpp_sync.websocket.inline import InlineTransport

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_LINE",
    "MAX_HEADER_COUNT",
    "RequestHead",
    "RequestParser",
    "read_request",
    "check_upgrade",
    "require_station_id",
    "station_id_from_path",
    "offered_subprotocols",
    "accept_response",
    "upgrade_socket",
    "refusal_parts",
    "refusal_response",
]

HANDSHAKE_TIMEOUT = 5.0
MAX_REQUEST_BYTES = 16 * 1024
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_COUNT = 100

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# security.Reason values (that module sits below this one, but only its values are needed).
_BAD_REQUEST, _TOO_LARGE, _TIMEOUT, _BAD_ID = ("bad_request", "request_too_large",
                                               "handshake_timeout", "invalid_station_id")


@dataclass(frozen=True)
class RequestHead:
    """An HTTP request head as it came: method, target (still percent-encoded), version."""

    method: str
    target: str
    http_version: str
    headers: Headers


class RequestParser:
    """Feed it bytes until it returns the request head; then ``leftover`` is what followed it.

    Raises :class:`UpgradeRefused` for a request line over ``max_request_line``
    (414), a head over ``max_request_bytes`` or with more than ``max_header_count``
    fields (431), and anything h11 will not parse (400).
    """

    def __init__(self, max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_request_line: int = MAX_REQUEST_LINE,
                 max_header_count: int = MAX_HEADER_COUNT) -> None:
        self._max_bytes = max_request_bytes
        self._max_line = max_request_line
        self._max_count = max_header_count
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_request_bytes)
        self._fed = 0
        self._line_seen = False
        self.leftover = b""

    def feed(self, data: bytes) -> RequestHead | None:
        if not data:
            raise EOFError("closed before the request was complete")
        start = self._fed
        self._fed += len(data)
        if not self._line_seen:
            line_end = data.find(b"\n")
            self._line_seen = line_end >= 0
            if (start + line_end if self._line_seen else self._fed) > self._max_line:
                raise UpgradeRefused(414, "request line too long", kind=_TOO_LARGE)
        self._h11.receive_data(data)
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:
                raise UpgradeRefused(431, "request header too large", kind=_TOO_LARGE) from None
            raise UpgradeRefused(400, f"malformed request: {exc}", kind=_BAD_REQUEST) from None
        if event is h11.NEED_DATA:
            return None
        assert isinstance(event, h11.Request)   # a server's first event is the request
        self.leftover = self._h11.trailing_data[0]
        if self._fed - len(self.leftover) > self._max_bytes:
            raise UpgradeRefused(431, "request header too large", kind=_TOO_LARGE)
        items = event.headers.raw_items()
        if len(items) > self._max_count:
            raise UpgradeRefused(431, "too many header fields", kind=_TOO_LARGE)
        headers = Headers(tuple((name.decode("ascii"), value.decode("iso-8859-1"))
                                for name, value in items))
        return RequestHead(event.method.decode("ascii"), event.target.decode("iso-8859-1"),
                           "HTTP/" + event.http_version.decode("ascii"), headers)


def read_request(sock: socket.socket, deadline: float, parser: RequestParser) -> RequestHead:
    """Read ``sock`` (blocking, under ``deadline``) until ``parser`` has the whole head.

    408 when the deadline passes first; EOFError (or OSError) when the client goes away.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpgradeRefused(408, "no complete upgrade request in time", kind=_TIMEOUT)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise UpgradeRefused(408, "no complete upgrade request in time",
                                 kind=_TIMEOUT) from None
        head = parser.feed(chunk)
        if head is not None:
            return head


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def check_upgrade(method: str, http_version: str, headers: Headers) -> None:
    """Refuse what is not a websocket upgrade request (RFC 6455 4.2.1): 405, 400 or 426."""
    if method != "GET":
        raise UpgradeRefused(405, "only GET upgrades to a websocket", [("Allow", "GET")],
                             kind=_BAD_REQUEST)
    if http_version != "HTTP/1.1":
        raise UpgradeRefused(400, "a websocket upgrade needs HTTP/1.1", kind=_BAD_REQUEST)
    if "websocket" not in _tokens(headers.get("Upgrade", "")) or \
            "upgrade" not in _tokens(headers.get("Connection", "")):
        raise UpgradeRefused(400, "not a websocket upgrade request", kind=_BAD_REQUEST)
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        raise UpgradeRefused(426, "websocket version 13 is required",
                             [("Sec-WebSocket-Version", "13")], kind=_BAD_REQUEST)
    try:
        key_ok = len(base64.b64decode(headers.get("Sec-WebSocket-Key", ""), validate=True)) == 16
    except (binascii.Error, ValueError):
        key_ok = False
    if not key_ok:
        raise UpgradeRefused(400, "missing or invalid Sec-WebSocket-Key", kind=_BAD_REQUEST)
    if headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in headers:
        raise UpgradeRefused(400, "an upgrade request has no body", kind=_BAD_REQUEST)


def station_id_from_path(path: str) -> str:
    """The URL-decoded last segment of a still percent-encoded path; 400 if empty or not UTF-8."""
    try:
        station_id = unquote(path.rsplit("/", 1)[-1], errors="strict")
    except UnicodeDecodeError:
        raise UpgradeRefused(400, "station id is not valid UTF-8", kind=_BAD_ID) from None
    return require_station_id(station_id)


def require_station_id(station_id: str) -> str:
    """``station_id`` itself; 400 if it is empty (a path, or a route, that names no station)."""
    if not station_id:
        raise UpgradeRefused(400, "no station id at the end of the path", kind=_BAD_ID)
    return station_id


def offered_subprotocols(headers: Headers) -> tuple[str, ...]:
    """The subprotocols the client offered, in its order."""
    value = headers.get("Sec-WebSocket-Protocol", "")
    return tuple(t.strip() for t in value.split(",") if t.strip())


def accept_response(key: str, subprotocol: str | None) -> bytes:
    """The 101 answer to a vetted request; no extensions (no compression).

    Without ``subprotocol`` the answer has no ``Sec-WebSocket-Protocol``: the OCPP-J
    way to say that none of the offered ones is spoken here.
    """
    accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
    protocol = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n{protocol}\r\n").encode("latin-1")


def refusal_parts(refused: UpgradeRefused) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """(status, phrase, headers, body) of the plain text answer that refuses an upgrade.

    No hop-by-hop header: a WSGI application may not set one (PEP 3333).
    """
    status = refused.status
    body = (refused.reason + "\n").encode("utf-8")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
               *refused.headers]
    if status == 401 and not any(name.lower() == "www-authenticate" for name, _ in headers):
        headers.append(("WWW-Authenticate", 'Basic realm="OCPP", charset="UTF-8"'))
    return status, phrase, headers, body


def refusal_response(refused: UpgradeRefused) -> bytes:
    """The refusal as bytes for a socket we own, which is closed after it."""
    status, phrase, headers, body = refusal_parts(refused)
    head = [f"HTTP/1.1 {status} {phrase}".rstrip(), *(f"{n}: {v}" for n, v in headers),
            "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def upgrade_socket(sock: socket.socket, key: str, subprotocol: str, remote_address: str, *,
                   handshake_timeout: float = HANDSHAKE_TIMEOUT, leftover: bytes = b"",
                   close_timeout: float = CLOSE_TIMEOUT, write_timeout: float = WRITE_TIMEOUT,
                   keepalive: Keepalive | None = None, max_message_size: int | None = None,
                   turnstile: Turnstile | None = None) -> InlineTransport:
    """Answer a vetted upgrade on ``sock`` with 101 and serve it as a websocket we read ourselves.

    The one way a socket we own becomes a websocket, the listener's and the WSGI
    endpoint's alike. ``key`` is the request's ``Sec-WebSocket-Key``; an empty
    ``subprotocol`` answers without one (the caller then closes: OCPP-J's refusal
    of the offered ones); ``leftover`` is what was read past the request head.
    The other options are :class:`InlineTransport`'s. Raises OSError if the 101
    cannot be written within ``handshake_timeout`` seconds.
    """
    sock.settimeout(handshake_timeout)
    sock.sendall(accept_response(key, subprotocol or None))
    sock.settimeout(None)
    return InlineTransport(sock, subprotocol, remote_address, close_timeout=close_timeout,
                           write_timeout=write_timeout, keepalive=keepalive,
                           max_message_size=max_message_size, turnstile=turnstile,
                           leftover=leftover)
