"""The central system side: a server for many stations, each on its own connection."""
from __future__ import annotations

import errno
import functools
import logging
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ocpp_sync import security
from ocpp_sync.csms.callbacks import StationCallbacks
from ocpp_sync.csms.metrics import CSMSFigures
from ocpp_sync.csms.registrations import Registrations, RegistrationStore
from ocpp_sync.csms.station import STATION_HISTORY_BYTES, STATION_HISTORY_SIZE, Station
from ocpp_sync.errors import CLOSE_REPLACED, AddressInUse, StationTimeout, UpgradeRefused
from ocpp_sync.protocol.registration import BOOT, RegistrationStatus
from ocpp_sync.protocol.versions import VERSIONS, check_handler_class, check_version, version_module
from ocpp_sync.runtime.actions import CSMSGroups
from ocpp_sync.runtime.connection import CSMS as CSMS_ROLE
from ocpp_sync.runtime.connection import Connection
from ocpp_sync.runtime.limits import descriptors_needed, raise_descriptor_limit
from ocpp_sync.runtime.memory import MemoryReturn, cap_malloc_arenas, freeze_start_up_objects, glibc_trim
from ocpp_sync.runtime.metrics import MetricsTotals
from ocpp_sync.signatures import check_handler
from ocpp_sync.websocket.base import ConnectionRequest

__all__ = ["CSMS", "Station"]

log = logging.getLogger("ocpp_sync.csms")

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
StationCallback = Callable[["Station"], Any]
RequestCallback = Callable[["Station", Any], Any]
AfterHook = Callable[["Station", Any, Any], Any]

# The CSMSs of this process by the port they listen on, so that a port taken by one of them
# (a notebook cell run twice) can be named in the error; weak, so a forgotten CSMS can still go.
_LISTENING: weakref.WeakValueDictionary[int, CSMS] = weakref.WeakValueDictionary()

REPLACE = "replace"  # a station that connects again takes over from its old connection
REFUSE = "refuse"    # ... is refused while its old connection is still up


class CSMS(CSMSGroups, CSMSFigures):
    """A central system: accepts stations, answers their calls, calls them.

    Handlers are registered per request class; each version's classes are
    distinct, so one CSMS serving 1.6 and 2.0.1 registers a handler for each.
    A handler gets ``(station, request)`` and returns the response object.
    ``on_connect`` callbacks run in a station's worker before its first
    call is handled (so they may call ``station.send``); ``on_disconnect``
    callbacks run once its connection has ended. ``on_accepted`` callbacks run
    once the station is Accepted: after our Accepted answer to its boot is on
    the wire, or at connect for a station Accepted before (the safe place to
    configure a station: see docs/registration.md). Security: see
    :mod:`ocpp_sync.security`. Options given to :meth:`start` win over these.

    Args:
        versions: The OCPP versions offered; a station gets the newest it also asks for.
        timeout: Seconds ``station.send()`` waits for an answer before CallTimeout, unless
            the call gives its own.
        lenient: Read stations' messages leniently: unknown fields, over-long strings,
            zoneless timestamps and nulls pass with a logged warning instead of a
            ValidationError (for chargers that break the schema).
        on_duplicate: What happens when a station connects while its old connection still
            looks alive: ``"replace"`` closes the old one, ``"refuse"`` answers the new
            upgrade with HTTP 409.
        max_connections: Stations beyond this many are refused with HTTP 503; None: no limit.
            At start the soft limit on open files is raised toward what this many (None:
            ``runtime.limits.ASSUMED_CONNECTIONS``) need, never past the hard limit.
        max_message_size: A message over this many bytes closes the connection with 1009;
            None: 256 KiB.
        ping_interval: Seconds of silence after which a station is pinged; None: never.
        pong_timeout: Seconds a ping may go unanswered before the station is given up.
        close_timeout: Seconds :meth:`stop` gives each station's calls in flight to be
            answered (at most a quarter of its own ``timeout``).
        history_size: How many frames each :attr:`Station.history` keeps; None: all.
        history_bytes: The most characters of frame text each station's history keeps (a
            bigger frame is kept as a placeholder), and of requests kept for ``expect``;
            None: no bound.
        ssl_context: Serves ``wss://`` (security profiles 2 and 3; see
            ``security.server_ssl_context``).
        authenticate: ``authenticate(station_id, password, certificate, headers) -> bool``,
            before the upgrade: False refuses with 401, ``security.Refused`` with its own
            status.
        known_stations: The ids that may connect (a collection, or ``known(id) -> bool``);
            any other is refused with 404. None: every id.
        on_security_event: ``hook(event)`` for every refused handshake and every connection
            closed for misbehaving (a ``security.SecurityEvent``).
        strict_station_ids: Refuse (400) ids that break the OCPP identity rules.
        handshake_timeout: Seconds a client has to send its whole upgrade request (and
            finish TLS).
        max_connections_per_address: Connections one IP address may hold (429 beyond);
            None, the default: no limit, since a site's chargers often share one address
            behind NAT.
        max_pending_handshakes: Handshakes in progress at once (503 beyond).
        max_bad_messages: Malformed frames in a row that close a connection with 1008;
            None: never.
        registration: Apply the boot rules (docs/registration.md): until a station is
            Accepted its calls other than BootNotification (and what we asked for) are
            answered SecurityError, and calls of ours its status forbids raise
            NotRegistered before anything is sent.
        unknown_stations: What a station with no boot on record counts as: "Accepted"
            (the default, so a CSMS restarted without a store serves its fleet),
            "Pending" (SecurityError until a boot) or "Rejected".
        registration_store: ``load(id) -> status | None`` and ``save(id, status)``, to
            keep registration statuses across restarts; None: in memory only.
        malloc_arenas: At :meth:`start`, cap glibc's malloc arenas for the whole process at
            this many, so that the memory of stations that left can be given back (see
            docs/threading.md); None: leave the allocator alone.
        gc_freeze: At the first :meth:`start` in the process, collect once and freeze what is
            alive (``gc.freeze``), so full collections no longer walk the start-up heap
            (docs/threading.md); False: leave the garbage collector alone.
    """

    on_connect = StationCallbacks("connect")
    on_disconnect = StationCallbacks("disconnect")
    on_accepted = StationCallbacks("accepted")

    def __init__(self, versions: Sequence[str] = ("1.6", "2.0.1", "2.1"), *,
                 timeout: float = 30.0, lenient: bool = False, on_duplicate: str = REPLACE,
                 max_connections: int | None = None, max_message_size: int | None = None,
                 ping_interval: float | None = None, pong_timeout: float = 10.0,
                 close_timeout: float = 5.0,
                 history_size: int | None = STATION_HISTORY_SIZE,
                 history_bytes: int | None = STATION_HISTORY_BYTES,
                 ssl_context: ssl.SSLContext | None = None,
                 authenticate: security.Authenticate | None = None,
                 known_stations: security.KnownStations | None = None,
                 on_security_event: security.SecurityEventHook | None = None,
                 strict_station_ids: bool = True, handshake_timeout: float = 5.0,
                 max_connections_per_address: int | None = None,
                 max_pending_handshakes: int | None = 256,
                 max_bad_messages: int | None = 10, registration: bool = True,
                 unknown_stations: str = "Accepted",
                 registration_store: RegistrationStore | None = None,
                 malloc_arenas: int | None = None, gc_freeze: bool = True) -> None:
        if not versions:
            raise ValueError("a CSMS needs at least one OCPP version")
        if on_duplicate not in (REPLACE, REFUSE):
            raise ValueError(f"on_duplicate must be {REPLACE!r} or {REFUSE!r}")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_bad_messages is not None and max_bad_messages < 1:
            raise ValueError("max_bad_messages must be at least 1 (or None)")
        if unknown_stations not in ("Accepted", "Pending", "Rejected"):
            raise ValueError("unknown_stations must be 'Accepted', 'Pending' or 'Rejected'")
        self._registrations = Registrations(RegistrationStatus(unknown_stations), registration_store) \
            if registration else None
        self.on_duplicate = on_duplicate
        self.max_connections = max_connections
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.close_timeout = close_timeout
        self.versions = tuple(check_version(v) for v in versions)
        self.timeout = timeout
        self.lenient = lenient
        self._handlers: dict[type, Callable[..., Any]] = {}
        self._callbacks: dict[str, list[StationCallback]] = {"connect": [], "disconnect": [],
                                                             "accepted": []}
        self._after: dict[type, list[AfterHook]] = {}
        self._boot_classes = frozenset(version_module(v).REQUESTS[BOOT] for v in self.versions)
        self._request_callbacks: list[RequestCallback] = []
        self.history_size = history_size
        self.history_bytes = history_bytes
        self.ssl_context = ssl_context
        self.authenticate = authenticate
        self.known_stations = known_stations
        self.on_security_event = on_security_event
        self.strict_station_ids = strict_station_ids
        self.handshake_timeout = handshake_timeout
        self.max_connections_per_address = max_connections_per_address
        self.max_pending_handshakes = max_pending_handshakes
        self.max_bad_messages = max_bad_messages
        self._metrics = MetricsTotals()   # every station's counts; see metrics()
        self._event_hook = self._metrics.counting(on_security_event)  # the listener's, once started
        self._changed = threading.Condition()  # guards _stations and _server
        self._stations: dict[str, Station] = {}
        self._server: Any = None
        self._stopped = False
        if malloc_arenas is not None and malloc_arenas < 1:
            raise ValueError("malloc_arenas must be at least 1 (or None)")
        self.malloc_arenas = malloc_arenas
        self.gc_freeze = gc_freeze
        self._memory = MemoryReturn(glibc_trim())

    def on(self, request_cls: type[Any]) -> Callable[[F], F]:
        """Decorator: answer stations' ``request_cls`` calls with ``handler(station, request)``."""
        check_handler_class(request_cls, self.versions, "CS_TO_CSMS")

        def register(handler: F) -> F:
            check_handler(handler, ("station", "request"), "CSMS handlers")
            self._handlers[request_cls] = handler
            return handler

        return register

    def after(self, request_cls: type[Any]) -> Callable[[F], F]:
        """Decorator: ``hook(station, request, response)`` runs once our answer to a station's
        ``request_cls`` call is on the wire, before its next call is handled.

        So a call the hook makes (a SetChargingProfile after a StartTransaction, say)
        reaches the station after the answer, never before it. Not run when the
        answer was a CALLERROR. Several hooks run in the order they were registered.
        """
        check_handler_class(request_cls, self.versions, "CS_TO_CSMS")

        def register(hook: F) -> F:
            check_handler(hook, ("station", "request", "response"), "after-answer hooks", "hook")
            self._after.setdefault(request_cls, []).append(hook)
            return hook

        return register

    def on_request(self, callback: RequestCallback) -> RequestCallback:
        """Call ``callback(station, request)`` for every validated request that has a handler.

        It runs in the thread that runs the handler, just before it, so it sees
        requests in order; if it raises, the handler does not run and the
        station gets the error (InternalError, or an OCPPError's own code), so
        a callback that must record every request can make the station retry.
        Usable as a decorator.
        """
        check_handler(callback, ("station", "request"), "on_request callbacks", "callback")
        self._request_callbacks.append(callback)
        return callback

    def __repr__(self) -> str:
        server = self._server
        where = f"listening on port {server.port}" if server is not None else "not listening"
        return f"<CSMS {where}, {len(self._stations)} station(s), OCPP {', '.join(self.versions)}>"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the CSMS is not listening")
        return int(self._server.port)

    @property
    def stations(self) -> dict[str, Station]:
        """A snapshot of the connected stations by id."""
        with self._changed:
            return dict(self._stations)

    def _listen(self, host: str, port: int, server_options: dict[str, Any]) -> Any:
        from ocpp_sync.runtime.listener import WebSocketServer

        with self._changed:
            if self._server is not None:
                raise RuntimeError("the CSMS is already listening")
            self._warn_unanswered()
            self._stopped = False
            self._memory = MemoryReturn(glibc_trim())
            if self.malloc_arenas is not None and not cap_malloc_arenas(self.malloc_arenas):
                log.info("malloc_arenas=%d ignored: not glibc", self.malloc_arenas)
            if self.gc_freeze:
                freeze_start_up_objects()
            raise_descriptor_limit(descriptors_needed(self.max_connections))
            options: dict[str, Any] = {
                "ping_interval": self.ping_interval, "pong_timeout": self.pong_timeout,
                "ssl_context": self.ssl_context, "authenticate": self.authenticate,
                "known_stations": self.known_stations,
                "on_security_event": self.on_security_event,
                "strict_station_ids": self.strict_station_ids,
                "handshake_timeout": self.handshake_timeout,
                "max_connections_per_address": self.max_connections_per_address,
                "max_pending_handshakes": self.max_pending_handshakes}
            if self.max_message_size is not None:
                options["max_message_size"] = self.max_message_size
            options.update(server_options)
            self._event_hook = options["on_security_event"] = self._metrics.counting(
                options["on_security_event"])
            options["check_request"] = functools.partial(self._check_request,
                                                         options.get("check_request"))
            try:
                self._server = WebSocketServer(
                    host, port, subprotocols=[f"ocpp{v}" for v in self._preference()],
                    on_connection=self._on_connection, **options)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                holder = _LISTENING.get(port) if port else None
                if holder is None:
                    raise AddressInUse(f"port {port} on {host} is in use by another program") from exc
                raise AddressInUse(
                    f"port {port} is held by a CSMS of this process ({holder!r}), started earlier "
                    f"(a cell run twice?): stop it first, e.g. with "
                    f"ocpp_sync.CSMS.listening_on({port}).stop()", holder) from exc
            _LISTENING[self._server.port] = self
            return self._server

    @staticmethod
    def listening_on(port: int) -> CSMS | None:
        """The CSMS of this process listening on ``port``, if any: to stop one a notebook lost."""
        return _LISTENING.get(port)

    def _check_request(self, user_check: Callable[[ConnectionRequest], None] | None,
                       request: ConnectionRequest) -> None:
        """Refuse before the upgrade what _serve would refuse after it, so the station sees why."""
        if user_check is not None:
            user_check(request)
        refusal = self._refusal(request.station_id)
        if refusal is not None:
            raise UpgradeRefused(refusal[0], refusal[1], kind=security.Reason.REFUSED,
                                 station_id=request.station_id)

    def _refusal(self, station_id: str) -> tuple[int, str] | None:
        with self._changed:
            return self._refusal_locked(station_id)

    def _refusal_locked(self, station_id: str) -> tuple[int, str] | None:
        """(HTTP status, reason) if this station may not connect now; the caller holds _changed."""
        old = self._stations.get(station_id)
        if old is not None and old.connected:
            if self.on_duplicate == REFUSE:
                return 409, f"station {station_id!r} is already connected"
            return None
        if self.max_connections is not None and len(self._stations) >= self.max_connections:
            return 503, "too many connections"
        return None

    def _preference(self) -> list[str]:
        """The newest version first: offered several, a station gets the newest we share."""
        return sorted(self.versions, key=VERSIONS.index, reverse=True)

    def start(self, host: str = "127.0.0.1", port: int = 0, **server_options: Any) -> None:
        """Listen in background threads and return; ``port=0`` picks a free port (see ``.port``).

        ``server_options`` go to the listener (``WebSocketServer``): for example
        ``check_request`` to refuse a handshake before the upgrade, or ``ping_interval``.
        """
        self._listen(host, port, server_options).start()
        log.info("CSMS listening on %s:%d", host, self.port)

    def serve_forever(self, host: str = "0.0.0.0", port: int = 9000, **server_options: Any) -> None:
        """Listen and block until :meth:`stop` is called from another thread (or Ctrl-C).

        Ctrl-C stops the CSMS and ends the program quietly with status 130 (a
        SystemExit, so ``finally`` and ``with`` blocks still run): no traceback
        for the usual way to stop a server.
        """
        server = self._listen(host, port, server_options)
        try:
            log.info("CSMS listening on %s:%d", host, self.port)   # inside: a Ctrl-C may come now
            server.serve_forever()
        except KeyboardInterrupt:
            log.info("CSMS interrupted (Ctrl-C); stopping")
            self.stop()
            raise SystemExit(130) from None
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening and serving metrics, close every connection, join the threads. Idempotent.

        Returns within about ``timeout`` seconds however the stations behave:
        connections that do not close cleanly in time are cut.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            server, self._server = self._server, None
            self._stopped = True  # from now on a new connection is refused with 1001
            if server is not None and _LISTENING.get(server.port) is self:
                del _LISTENING[server.port]
            stations = list(self._stations.values())
        self._memory.stop()
        # Side by side, so one slow station does not eat the others' time: each may finish
        # the calls in flight, then closes with 1001. The listener gets the second half.
        drain = min(self.close_timeout, timeout / 4)
        closers = [threading.Thread(target=station._close,
                                    args=(1001, "the CSMS is stopping", drain, timeout / 4),
                                    name=f"ocpp-csms-stop-{station.id}", daemon=True)
                   for station in stations if station.connected]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(max(0.0, deadline - timeout / 2 - time.monotonic()))
        if server is not None:
            server.stop(timeout=max(0.1, deadline - time.monotonic()))
        for closer in closers:
            closer.join(max(0.0, deadline - time.monotonic()))
        self._stop_metrics(max(0.1, deadline - time.monotonic()))

    def wait_for_station(self, station_id: str, timeout: float | None = None) -> Station:
        """Block until a station with this id is connected; StationTimeout if none came in time."""
        with self._changed:
            if not self._changed.wait_for(lambda: station_id in self._stations, timeout):
                raise StationTimeout(f"station {station_id!r} did not connect within {timeout} s")
            return self._stations[station_id]

    def handle(self, ws: Any, station_id: str, subprotocol: str | None = None,
               remote_address: str = "") -> None:
        """Serve an already-accepted ``simple_websocket.Server`` until it closes.

        For hosting the CSMS in an existing web app (a flask-sock route, say):
        call it from the route with the station id taken from the URL.
        ``subprotocol`` defaults to the one the websocket negotiated.
        """
        from ocpp_sync.websocket.simple import MAX_MESSAGE_SIZE, adapt_simple_websocket

        chosen = subprotocol or getattr(ws, "subprotocol", None) or ""
        transport = adapt_simple_websocket(ws, chosen, remote_address,
                                           max_message_size=self.max_message_size or MAX_MESSAGE_SIZE)
        self._serve(transport, station_id, chosen, None)

    def _on_connection(self, transport: Any, station_id: str, request: Any) -> None:
        self._serve(transport, station_id, transport.subprotocol, request)

    def _serve(self, transport: Any, station_id: str, subprotocol: str, request: Any) -> None:
        version = subprotocol[4:] if subprotocol.lower().startswith("ocpp") else subprotocol
        if version not in self.versions:
            log.warning("refused station %r: subprotocol %r is not one of ours", station_id,
                        subprotocol)
            self._metrics.refused(security.Reason.NO_COMMON_SUBPROTOCOL.value, None)
            transport.close(1002, "unsupported subprotocol")
            return
        station = Station(station_id, version, request, self.history_size, self.history_bytes)
        registrations = self._registrations
        if registrations is not None:
            station._registration = registrations.for_station(station_id, version)
        with self._changed:
            stopped = self._stopped
            refusal = None if stopped else self._refusal_locked(station_id)
            if not stopped and refusal is None:
                # Only for a station let in: the connection and the station point at each
                # other until it ends, which cuts the cycle; a refused one never runs.
                connection = self._new_connection(transport, station)
                previous = self._stations.get(station_id)
                self._stations[station_id] = station
                self._changed.notify_all()
        if stopped:
            transport.close(1001, "the CSMS is stopping")
            return
        if refusal is not None:
            self._metrics.refused(security.Reason.REFUSED.value, refusal[0])
            log.warning("refused station %r: %s", station_id, refusal[1])
            transport.close(1008 if refusal[0] == 409 else 1013, refusal[1])
            return
        if previous is not None:
            log.warning("station %r connected again; closing its previous connection", station_id)
            previous._close(CLOSE_REPLACED, "replaced by a newer connection under this id", 0.0)
            previous = None   # this frame lives as long as the new connection: let the old one go
        log.info("station %r connected from %s (OCPP %s)", station_id, station.remote_address,
                 version)
        for callback in list(self._callbacks["connect"]):
            connection.run_task(functools.partial(callback, station))
        if station._registration is not None and station._registration.status is RegistrationStatus.ACCEPTED:
            connection.run_task(functools.partial(self._accepted, station))
        connection.run()

    def _new_connection(self, transport: Any, station: Station) -> Connection:
        connection = Connection(transport, name=f"ocpp-csms-{station.id}", version=station.version,
                                role=CSMS_ROLE,
                                find_handler=functools.partial(self._find_handler, station),
                                timeout=self.timeout, lenient=self.lenient,
                                on_close=functools.partial(self._closed, station),
                                history=station.history, max_bad_messages=self.max_bad_messages,
                                on_bad_messages=functools.partial(self._bad_messages, station),
                                turnstile=getattr(transport, "turnstile", None),
                                find_after=functools.partial(self._find_after, station),
                                registration=station._registration,
                                metrics=self._metrics.attach(station.version))
        station._connection = connection
        return connection

    def _find_after(self, station: Station, request_cls: type) -> Callable[[Any, Any], None] | None:
        hooks = self._after.get(request_cls)
        if hooks is None and (request_cls not in self._boot_classes
                              or (self._registrations is None and not self._callbacks["accepted"])):
            return None
        return functools.partial(self._run_after, station, list(hooks or ()))

    def _run_after(self, station: Station, hooks: list[AfterHook], request: Any, response: Any) -> None:
        for hook in hooks:
            try:
                hook(station, request, response)
            except Exception:
                log.exception("an after-answer hook failed for %r", station.id)
        if type(request) in self._boot_classes:
            status = RegistrationStatus(str(getattr(response.status, "value", response.status)))
            if self._registrations is not None:
                self._registrations.save(station.id, status)
            if status is RegistrationStatus.ACCEPTED:
                self._accepted(station)

    def _accepted(self, station: Station) -> None:
        for callback in list(self._callbacks["accepted"]):
            try:
                callback(station)
            except Exception:
                log.exception("an on_accepted callback failed for %r", station.id)

    def _bad_messages(self, station: Station, count: int) -> None:
        security.notify_security_event(self._event_hook, security.SecurityEvent(
            security.Reason.BAD_MESSAGES, station.remote_address, station.id, close_code=1008,
            detail=f"{count} malformed messages in a row"))

    def _find_handler(self, station: Station, request_cls: type) -> Callable[[Any], Any] | None:
        handler = self._handlers.get(request_cls)
        return None if handler is None else functools.partial(self._answer, station, handler)

    def _answer(self, station: Station, handler: Callable[..., Any], request: Any) -> Any:
        for callback in list(self._request_callbacks):
            callback(station, request)
        return handler(station, request)

    def _closed(self, station: Station) -> None:
        with self._changed:
            if self._stations.get(station.id) is station:
                del self._stations[station.id]
                self._changed.notify_all()
        station.history.close()
        self._memory.station_left()
        log.info("station %r disconnected", station.id)
        for callback in list(self._callbacks["disconnect"]):
            try:
                callback(station)
            except Exception:
                log.exception("an on_disconnect callback failed for %r", station.id)
