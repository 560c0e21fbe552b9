"""Stations and web pages in one WSGI process: websocket upgrades on a path prefix reach a CSMS.

::

    from django.core.wsgi import get_wsgi_application
    from ocpp_sync.contrib.wsgi import CSMSMiddleware
    from myproject.ocpp import csms

    application = CSMSMiddleware(get_wsgi_application(), csms, prefix="/ocpp/")

The server must hand the application its socket and run each request in its own
thread: gunicorn with gthread workers (``environ["gunicorn.socket"]``) or
werkzeug's threaded server (``environ["werkzeug.socket"]``). A connected station
keeps its request thread for as long as it stays connected, and every view must
see the same CSMS, so run gunicorn as ONE worker with enough threads:
``gunicorn -k gthread --workers 1 --threads 64 myproject.wsgi``.

simple-websocket answers 101 to any request it is handed, so every refusal
(no common subprotocol, a bad station id, bad credentials, a station already
connected) is a plain HTTP answer given here before the upgrade.
"""
from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import simple_websocket

from ocpp_sync import security
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.security import Reason, Refused, SecurityEvent
from ocpp_sync.websocket.base import ConnectionRequest, HandshakeError, Headers
from ocpp_sync.websocket.simple import MAX_MESSAGE_SIZE, RECEIVE_BYTES, _LockedSocket, adapt_simple_websocket

__all__ = ["CSMSMiddleware", "StationEndpoint", "is_websocket_upgrade", "request_headers",
           "refusal_response", "finished_response"]

log = logging.getLogger("ocpp_sync.contrib")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApplication = Callable[[Environ, StartResponse], Iterable[bytes]]

# simple-websocket's order: werkzeug first.
_SOCKET_KEYS = ("werkzeug.socket", "gunicorn.socket")
_REFUSAL_HEADERS: dict[int, tuple[tuple[str, str], ...]] = {
    401: (("WWW-Authenticate", 'Basic realm="OCPP", charset="UTF-8"'),),
    426: (("Sec-WebSocket-Version", "13"),),
}


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def is_websocket_upgrade(environ: Mapping[str, Any]) -> bool:
    """True for a GET that asks to become a websocket (``Upgrade: websocket``)."""
    return (environ.get("REQUEST_METHOD") == "GET"
            and "websocket" in _tokens(environ.get("HTTP_UPGRADE", ""))
            and "upgrade" in _tokens(environ.get("HTTP_CONNECTION", "")))


def request_headers(environ: Mapping[str, Any]) -> Headers:
    """The request's HTTP headers from a WSGI environ, with case-insensitive lookup."""
    items = [("-".join(part.capitalize() for part in key[5:].split("_")), str(value))
             for key, value in environ.items() if key.startswith("HTTP_")]
    return Headers(tuple(items))


def _server_socket(environ: Mapping[str, Any]) -> Any:
    for key in _SOCKET_KEYS:
        sock = environ.get(key)
        if sock is not None:
            return sock
    return None


def _remote_address(environ: Mapping[str, Any]) -> str:
    host = str(environ.get("REMOTE_ADDR", ""))
    port = environ.get("REMOTE_PORT")
    if not port:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peer_certificate(sock: Any) -> security.PeerCertificate | None:
    if isinstance(sock, ssl.SSLSocket):
        return sock.getpeercert() or None
    return None


def _shutdown(sock: Any) -> None:
    """End the TCP connection under the server's feet, so it writes nothing more and reads EOF.

    The socket object may already be closed while the server's file objects keep
    its descriptor open (werkzeug), hence the shutdown through the base class.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


def _raw_path(environ: Mapping[str, Any]) -> str:
    """The path as the client sent it, still percent-encoded (so ``%2F`` is not a separator)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return urlsplit(str(raw)).path
    return quote((environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1"))


def _station_id_from_path(environ: Mapping[str, Any]) -> str:
    """The URL-decoded last segment of the path, as the standalone listener takes it."""
    try:
        return unquote(_raw_path(environ).rsplit("/", 1)[-1], errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, "station id is not valid UTF-8", kind=Reason.INVALID_STATION_ID) from None


def _offered(environ: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(t.strip() for t in environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",") if t.strip())


def _connection_request(environ: Mapping[str, Any], station_id: str, subprotocol: str,
                        remote: str) -> ConnectionRequest:
    return ConnectionRequest(path=_raw_path(environ), station_id=station_id, headers=request_headers(environ),
                             remote_address=remote, subprotocols=_offered(environ), subprotocol=subprotocol,
                             query=str(environ.get("QUERY_STRING", "")))


def refusal_response(refused: Refused) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of the plain HTTP answer that refuses an upgrade."""
    status = refused.status or 400
    body = (refused.reason + "\n").encode("utf-8")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    # No "Connection: close": WSGI applications may not set hop-by-hop headers (PEP 3333).
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
               *_REFUSAL_HEADERS.get(status, ())]
    return f"{status} {phrase}".rstrip(), headers, body


class StationEndpoint:
    """Decides on a station's upgrade request before the upgrade, then serves the connection.

    The options mean what they mean for ``CSMS.start`` (see :mod:`ocpp_sync.security`),
    and are checked in the same order: a station id (400; with ``strict_station_ids``
    also the OCPP identity rules), a subprotocol the CSMS speaks (400; the newest in
    common is chosen), a known station (404), ``authenticate`` (401). Every refusal
    is reported to ``on_security_event``. A station the CSMS would refuse anyway
    (already connected under ``on_duplicate="refuse"``: 409; ``max_connections``
    reached: 503) is refused here too.

    Called as a WSGI application, it takes the station id from the last path segment.
    """

    def __init__(self, csms: CSMS, *, authenticate: security.Authenticate | None = None,
                 known_stations: security.KnownStations | None = None,
                 strict_station_ids: bool = False,
                 on_security_event: security.SecurityEventHook | None = None) -> None:
        self.csms = csms
        self.authenticate = authenticate
        self.known_stations = known_stations
        self.strict_station_ids = strict_station_ids
        self.on_security_event = on_security_event

    def check(self, environ: Mapping[str, Any], station_id: str) -> str:
        """The subprotocol to accept the station with; raises :class:`~ocpp_sync.security.Refused`.

        The refusal has already been reported to ``on_security_event`` and logged.
        """
        try:
            return self._check(environ, station_id)
        except Refused as refused:
            self._report(environ, station_id, refused)
            raise
        except HandshakeError as exc:  # from an authenticate hook: its status stands
            hook_refusal = Refused(exc.status or 400, exc.reason or str(exc), kind=Reason.REFUSED)
            self._report(environ, station_id, hook_refusal)
            raise hook_refusal from None

    def _report(self, environ: Mapping[str, Any], station_id: str | None, refused: Refused) -> None:
        security.notify_security_event(self.on_security_event, SecurityEvent(
            reason=refused.kind, remote_address=_remote_address(environ),
            station_id=station_id or None, status=refused.status, detail=refused.reason))

    def _check(self, environ: Mapping[str, Any], station_id: str) -> str:
        if not is_websocket_upgrade(environ):
            raise Refused(400, "not a websocket upgrade request", kind=Reason.BAD_REQUEST)
        if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
            raise Refused(426, "websocket version 13 is required", kind=Reason.BAD_REQUEST)
        if not environ.get("HTTP_SEC_WEBSOCKET_KEY"):
            raise Refused(400, "missing Sec-WebSocket-Key", kind=Reason.BAD_REQUEST)
        sock = _server_socket(environ)
        if sock is None:
            raise Refused(501, "this WSGI server does not expose its socket: use gunicorn (gthread) "
                               "or werkzeug", kind=Reason.REFUSED)
        if not station_id:
            raise Refused(400, "no station id at the end of the path", kind=Reason.INVALID_STATION_ID)
        if self.strict_station_ids:
            security.validate_station_id(station_id)
        offered = _offered(environ)
        ours = [f"ocpp{v}" for v in self.csms._preference()]
        chosen = next((p for p in ours if p in offered), None)
        if chosen is None:
            raise Refused(400, f"no common subprotocol: this server speaks {', '.join(ours)}",
                          kind=Reason.NO_COMMON_SUBPROTOCOL)
        security.check_known_station(station_id, self.known_stations)
        if self.authenticate is not None:
            security.check_credentials(station_id, request_headers(environ), _peer_certificate(sock),
                                       self.authenticate)
        refusal = self.csms._refusal(station_id)
        if refusal is not None:
            raise Refused(refusal[0], refusal[1], kind=Reason.REFUSED)
        return chosen

    def serve(self, environ: Mapping[str, Any], station_id: str, subprotocol: str) -> None:
        """Upgrade the request and serve the station in this thread until it disconnects.

        Afterwards the TCP connection is shut down: it belongs to the websocket,
        and the server must write no HTTP response on it.
        """
        sock = _server_socket(environ)
        remote = _remote_address(environ)
        # Only what simple-websocket's handshake reads; no Sec-WebSocket-Extensions, so no
        # permessage-deflate, as on the standalone listener. Every write, the 101 included, is a
        # whole sendall under the lock the transport then shares with simple-websocket's thread.
        ws_environ = {
            "werkzeug.socket": _LockedSocket(sock),
            "HTTP_HOST": environ.get("HTTP_HOST", ""),
            "HTTP_UPGRADE": "websocket",
            "HTTP_CONNECTION": "Upgrade",
            "HTTP_SEC_WEBSOCKET_KEY": environ["HTTP_SEC_WEBSOCKET_KEY"],
            "HTTP_SEC_WEBSOCKET_VERSION": "13",
            "HTTP_SEC_WEBSOCKET_PROTOCOL": subprotocol,
        }
        thread_class = functools.partial(threading.Thread, name=f"ocpp-ws-{station_id}", daemon=True)
        try:
            try:
                ws = simple_websocket.Server.accept(
                    ws_environ, subprotocols=[subprotocol], receive_bytes=RECEIVE_BYTES,
                    ping_interval=None, max_message_size=self.csms.max_message_size or MAX_MESSAGE_SIZE,
                    thread_class=thread_class)
            except Exception as exc:
                log.warning("websocket upgrade for %s (%r) failed: %s", remote, station_id, exc)
                return
            transport = adapt_simple_websocket(
                ws, subprotocol, remote, close_timeout=self.csms.close_timeout,
                ping_interval=self.csms.ping_interval, pong_timeout=self.csms.pong_timeout)
            thread = threading.current_thread()
            old_name, thread.name = thread.name, f"ocpp-conn-{station_id}"
            try:
                # What CSMS.handle does, plus the request (Station.request) and the CSMS's keepalive:
                # without pings, a station gone silent would hold a server thread for good.
                self.csms._serve(transport, station_id, subprotocol,
                                 _connection_request(environ, station_id, subprotocol, remote))
            finally:
                thread.name = old_name
        finally:
            _shutdown(sock)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            try:
                station_id = _station_id_from_path(environ)
            except Refused as refused:
                self._report(environ, None, refused)
                raise
            subprotocol = self.check(environ, station_id)
        except Refused as refused:
            status, headers, body = refusal_response(refused)
            start_response(status, headers)
            return [body]
        self.serve(environ, station_id, subprotocol)
        return finished_response(environ, start_response)


def finished_response(environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """What a WSGI app returns once the websocket it took over has ended.

    gunicorn closes the connection without writing when the application raises
    StopIteration; werkzeug writes the status line it is given, which fails on
    the shut socket and is dropped quietly (its log shows 101).
    """
    if "werkzeug.socket" not in environ and "gunicorn.socket" in environ:
        raise StopIteration
    start_response("101 Switching Protocols", [])
    return []


class CSMSMiddleware:
    """A WSGI application: websocket upgrades under ``prefix`` go to ``csms``, the rest to ``app``.

    The station id is the last segment of the path (``/ocpp/CP_1``). Requests
    under the prefix that are not websocket upgrades go to ``app`` like any
    other. The keyword arguments are :class:`StationEndpoint`'s.
    """

    def __init__(self, app: WSGIApplication, csms: CSMS, prefix: str = "/ocpp/", *,
                 authenticate: security.Authenticate | None = None,
                 known_stations: security.KnownStations | None = None,
                 strict_station_ids: bool = False,
                 on_security_event: security.SecurityEventHook | None = None) -> None:
        if not prefix.startswith("/"):
            raise ValueError("prefix must start with '/'")
        self.app = app
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.endpoint = StationEndpoint(csms, authenticate=authenticate, known_stations=known_stations,
                                        strict_station_ids=strict_station_ids,
                                        on_security_event=on_security_event)

    @property
    def csms(self) -> CSMS:
        return self.endpoint.csms

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(self.prefix) and is_websocket_upgrade(environ):
            return self.endpoint(environ, start_response)
        return self.app(environ, start_response)
