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

Every request is judged here before the upgrade, by the rules and in the order
of the standalone listener (``websocket.admission``): a refusal (a bad station
id, bad credentials, a station already connected) is a plain HTTP answer; a
station offering none of the CSMS's subprotocols gets OCPP-J's answer, a 101
without ``Sec-WebSocket-Protocol`` and an immediate close (1002).
"""
from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ocpp_sync import security
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.errors import UpgradeRefused
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.security import Reason, Refused, SecurityEvent
from ocpp_sync.websocket.admission import STRICT_STATION_IDS, Admission
from ocpp_sync.websocket.base import MAX_MESSAGE_SIZE, ConnectionRequest, Headers
from ocpp_sync.websocket.handshake import (
    check_upgrade,
    offered_subprotocols,
    refusal_parts,
    require_station_id,
    station_id_from_path,
    upgrade_socket,
)

__all__ = ["CSMSMiddleware", "StationEndpoint", "is_websocket_upgrade", "request_headers",
           "refusal_response", "finished_response"]

log = logging.getLogger("ocpp_sync.contrib")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApplication = Callable[[Environ, StartResponse], Iterable[bytes]]

# simple-websocket's order: werkzeug first.
_SOCKET_KEYS = ("werkzeug.socket", "gunicorn.socket")


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


def _connection_request(environ: Mapping[str, Any], station_id: str, remote: str,
                        certificate: security.PeerCertificate | None) -> ConnectionRequest:
    headers = request_headers(environ)
    return ConnectionRequest(path=_raw_path(environ), station_id=station_id, headers=headers,
                             remote_address=remote, subprotocols=offered_subprotocols(headers),
                             query=str(environ.get("QUERY_STRING", "")), certificate=certificate)


def refusal_response(refused: UpgradeRefused) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of the plain HTTP answer that refuses an upgrade."""
    status, phrase, headers, body = refusal_parts(refused)
    return f"{status} {phrase}".rstrip(), headers, body


class StationEndpoint:
    """Decides on a station's upgrade request before the upgrade, then serves the connection.

    The options mean what they mean for ``CSMS.start`` (see :mod:`ocpp_sync.security`),
    and the decision is the standalone listener's (``websocket.admission``), in its
    order: a websocket upgrade at all (400/405/426), a station id (400; with
    ``strict_station_ids``, the default, also the OCPP identity rules), a known
    station (404), ``authenticate`` (401), a subprotocol the CSMS speaks (none:
    101 without one, then close 1002), and what the CSMS would refuse anyway
    (already connected under ``on_duplicate="refuse"``: 409; ``max_connections``
    reached: 503). Every refusal is reported to ``on_security_event``.

    Called as a WSGI application, it takes the station id from the last path segment.
    """

    def __init__(self, csms: CSMS, *, authenticate: security.Authenticate | None = None,
                 known_stations: security.KnownStations | None = None,
                 strict_station_ids: bool = STRICT_STATION_IDS,
                 on_security_event: security.SecurityEventHook | None = None) -> None:
        self.csms = csms
        self.authenticate = authenticate
        self.known_stations = known_stations
        self.strict_station_ids = strict_station_ids
        self.on_security_event = on_security_event
        self._admission = Admission([f"ocpp{v}" for v in csms._preference()],
                                    authenticate=authenticate, known_stations=known_stations,
                                    strict_station_ids=strict_station_ids,
                                    check_request=functools.partial(csms._check_request, None))

    def check(self, environ: Mapping[str, Any], station_id: str) -> str:
        """The subprotocol to accept the station with; raises :class:`~ocpp_sync.security.Refused`.

        An empty string means the station offered none of the CSMS's: :meth:`serve`
        then answers 101 without one and closes (1002), as OCPP-J wants. A refusal
        has already been reported to ``on_security_event`` and logged.
        """
        try:
            return self._check(environ, station_id)
        except UpgradeRefused as refused:
            self._report(environ, refused.station_id, refused)
            raise

    def _report(self, environ: Mapping[str, Any], station_id: str | None,
                refused: UpgradeRefused) -> None:
        log.info("refused %s: %d %s", _remote_address(environ), refused.status, refused.reason)
        security.notify_security_event(self._counted_hook(), SecurityEvent(
            reason=Reason(refused.kind), remote_address=_remote_address(environ),
            station_id=station_id or None, status=refused.status, detail=refused.reason))

    def _counted_hook(self) -> security.SecurityEventHook:
        """``on_security_event`` with the event counted in the CSMS's metrics first."""
        return self.csms._metrics.counting(self.on_security_event)

    def _check(self, environ: Mapping[str, Any], station_id: str) -> str:
        check_upgrade(str(environ.get("REQUEST_METHOD", "")),
                      str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")), request_headers(environ))
        sock = _server_socket(environ)
        if sock is None:
            raise Refused(501, "this WSGI server does not expose its socket: use gunicorn (gthread) "
                               "or werkzeug", kind=Reason.REFUSED)
        request = _connection_request(environ, require_station_id(station_id), _remote_address(environ),
                                      _peer_certificate(sock))
        admitted = self._admission.admit(request)
        return "" if admitted is None else admitted.subprotocol

    def serve(self, environ: Mapping[str, Any], station_id: str, subprotocol: str) -> None:
        """Upgrade the request and serve the station in this thread until it disconnects.

        With an empty ``subprotocol`` (see :meth:`check`) the 101 names none and
        the connection is closed at once. Afterwards the TCP connection is shut
        down: it belongs to the websocket, and the server must write no HTTP response on it.
        """
        sock = _server_socket(environ)
        remote = _remote_address(environ)
        try:
            try:
                transport = upgrade_socket(
                    sock, str(environ["HTTP_SEC_WEBSOCKET_KEY"]).strip(), subprotocol, remote,
                    max_message_size=self.csms.max_message_size or MAX_MESSAGE_SIZE,
                    close_timeout=self.csms.close_timeout,
                    keepalive=Keepalive(self.csms.ping_interval, self.csms.pong_timeout))
            except Exception as exc:
                log.warning("websocket upgrade for %s (%r) failed: %s", remote, station_id, exc)
                return
            if not subprotocol:
                reason = self._admission.no_common_subprotocol()
                transport.close(1002, reason)
                security.notify_security_event(self._counted_hook(), SecurityEvent(
                    Reason.NO_COMMON_SUBPROTOCOL, remote, station_id, close_code=1002,
                    detail=reason))
                return
            thread = threading.current_thread()
            old_name, thread.name = thread.name, f"ocpp-conn-{station_id}"
            try:
                # What CSMS.handle does, plus the request (Station.request) and the CSMS's keepalive:
                # without pings, a station gone silent would hold a server thread for good.
                self.csms._serve(transport, station_id, subprotocol,
                                 _connection_request(environ, station_id, remote,
                                                     _peer_certificate(sock)))
            finally:
                thread.name = old_name
        finally:
            _shutdown(sock)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            try:
                station_id = station_id_from_path(_raw_path(environ))
            except UpgradeRefused as refused:
                self._report(environ, None, refused)
                raise
            subprotocol = self.check(environ, station_id)
        except UpgradeRefused as refused:
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
                 strict_station_ids: bool = STRICT_STATION_IDS,
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
