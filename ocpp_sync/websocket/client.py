"""The charge point side: websocket-client opens the connection, the inline transport carries it.

websocket-client does the handshake and everything around it (proxies, TLS options,
headers, redirects); its per-frame path (a select before each read, two or three
reads and an ABNF object per frame, masking in Python) was a large share of the
charge point's CPU per message, so once the 101 is in, the socket is handed to
``InlineTransport`` in client mode, as the CSMS's listener hands over its own. No
byte is lost on the way: websocket-client reads the response one byte at a time,
up to the blank line ending its headers, so any frame right behind it is still in
the socket (or, with TLS, in the SSL object, which the transport reads first).
"""
from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import websocket

from ocpp_sync import security as _security
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.websocket.base import (
    CLOSE_TIMEOUT,
    MAX_MESSAGE_SIZE,
    PONG_TIMEOUT,
    HandshakeError,
    Transport,
)
from ocpp_sync.websocket.inline import InlineTransport

__all__ = ["connect", "station_url"]

log = logging.getLogger("ocpp_sync.transport")


def check_url(url: str) -> None:
    """ValueError, saying what is expected, unless ``url`` is a ws:// or wss:// URL with a host."""
    example = "ws://127.0.0.1:9000/ocpp"
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"expected a websocket URL starting with ws:// or wss:// (e.g. {example}), "
                         f"got {_safe_url(url)!r}")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{_safe_url(url)!r} is not a valid URL ({exc}); e.g. {example}") from None
    if not host:
        raise ValueError(f"{_safe_url(url)!r} names no host; e.g. {example}")


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
            ping_interval: float | None = None, pong_timeout: float = PONG_TIMEOUT,
            password: str | bytes | None = None,
            ssl_context: ssl.SSLContext | None = None,
            max_message_size: int | None = None) -> Transport:
    """Open the station's websocket to the CSMS at ``url``.

    Raises HandshakeError for every way the connection can fail to open; its
    ``status`` is the HTTP status when the server refused the upgrade.
    ``timeout`` bounds the TCP connect and the handshake, and later any write
    that makes no progress (a server that stopped reading: the connection is then
    given up). With ``ping_interval`` a quiet server is pinged, and given up
    ``pong_timeout`` later if still silent; ``close_timeout`` bounds close().

    ``password`` sends ``Authorization: Basic`` with the station id as user
    (security profiles 1 and 2). ``ssl_context`` is the TLS context for a
    ``wss://`` URL (see ``security.client_ssl_context``); without it (and without
    ``sslopt``) a ``wss://`` URL is verified against the system's CAs, host name
    included, with TLS 1.2 at least. A message from the server over
    ``max_message_size`` bytes (None: ``MAX_MESSAGE_SIZE``, as for the CSMS)
    closes the connection with 1009.
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
              if name.lower() != "sec-websocket-protocol"
              and (password is None or name.lower() != "authorization")]
    # Offered here, not through websocket-client's option: it would refuse a 101 without a
    # subprotocol as an invalid header, which is how OCPP-J says "none of those" (permanent).
    header.append("Sec-WebSocket-Protocol: " + ",".join(subprotocols))
    if password is not None:
        header.append("Authorization: " + _security.basic_authorization(station_id, password))
    # websocket-client follows redirects with the same headers: never hand the station's
    # credentials to wherever a redirect points.
    credentials = any(line.lower().startswith("authorization:") for line in header)
    ws = websocket.WebSocket(sslopt=sslopt)
    try:
        ws.connect(target, timeout=timeout, header=header,
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
    chosen = (ws.getheaders() or {}).get("sec-websocket-protocol")
    match = next((p for p in subprotocols if chosen is not None and p.lower() == chosen.lower()), None)
    if match is None:
        ws.shutdown()
        if chosen is None:
            raise HandshakeError(f"{shown}: server speaks none of the subprotocols "
                                 f"{list(subprotocols)}", permanent=True)
        raise HandshakeError(f"{shown}: server chose subprotocol {chosen!r}, not one of "
                             f"{list(subprotocols)}", permanent=True)
    sock = ws.sock
    assert sock is not None   # connect() returned, so the socket is there
    try:
        host, port = sock.getpeername()[:2]
        # The connect timeout stays on the socket otherwise: the transport wants a plain socket
        # blocking (its reader waits with poll when it has a deadline); a TLS one it makes
        # non-blocking itself.
        sock.settimeout(None)
    except OSError as exc:
        ws.shutdown()
        raise HandshakeError(f"{shown}: could not open the websocket: {_describe(exc)}") from exc
    log.info("connected to %s as %r (%s)", shown, station_id, match)
    return InlineTransport(sock, match, f"{host}:{port}", client=True,
                           close_timeout=close_timeout, write_timeout=timeout,
                           keepalive=Keepalive(ping_interval, pong_timeout),
                           max_message_size=max_message_size or MAX_MESSAGE_SIZE)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException)):
        return "timed out"
    return str(exc) or type(exc).__name__
