"""The charge point side: a blocking client for one connection to a CSMS."""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from ocpp_sync.chargepoint.boot import Booter
from ocpp_sync.chargepoint.figures import ChargePointFigures
from ocpp_sync.chargepoint.outbox import Outbox, Queued, QueuedCall
from ocpp_sync.chargepoint.store import OfflineQueue, QueuedMessage, is_queued, stored_count
from ocpp_sync.errors import CLOSE_REPLACED, ConnectionClosed, HandshakeError, OCPPError, Replaced
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.retry import BackOff, TransactionRetry
from ocpp_sync.protocol.versions import MessageInfo, check_handler_class, check_version, message_info, version_module
from ocpp_sync.runtime.actions import ChargePointActions
from ocpp_sync.runtime.connection import CS, Connection, call_with_dict
from ocpp_sync.runtime.history import DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_SIZE, History
from ocpp_sync.runtime.metrics import MetricsTotals
from ocpp_sync.signatures import check_handler
from ocpp_sync.websocket.client import check_url
from ocpp_sync.websocket.client import connect as open_websocket

__all__ = ["ChargePoint"]

log = logging.getLogger("ocpp_sync.chargepoint")

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
Hook = Callable[["ChargePoint"], Any]
DroppedHook = Callable[["ChargePoint", QueuedMessage, BaseException], Any]

def _info(message: Any) -> MessageInfo:
    try:
        return message_info(message)
    except (TypeError, KeyError, AttributeError, ValueError):
        raise TypeError(f"not an OCPP message: {message!r}") from None


def _run_hooks(name: str, hooks: list[Callable[[Any, Any], Any]], request: Any, response: Any) -> None:
    for hook in hooks:
        try:
            hook(request, response)
        except Exception:
            log.exception("%s: an after-answer hook for %s failed", name, type(request).__name__)


class ChargePoint(ChargePointActions, ChargePointFigures):
    """A charge point's connection to its CSMS, with blocking calls.

    Handlers for the CSMS's calls run one at a time in this connection's
    worker thread and may call :meth:`send` themselves.

    A lost connection is reopened in the background ("ocpp-<id>-reconnect")
    after the ``backoff`` delays, unless ``reconnect`` is False or the server
    refused us in a way a retry cannot heal (HandshakeError.permanent), or
    closed us because a newer connection under our id took over (close code
    ``CLOSE_REPLACED``: calls then raise :class:`Replaced`).
    Transaction messages (1.6 StartTransaction, StopTransaction, MeterValues;
    2.x TransactionEvent; SecurityEventNotification) keep the order of a
    durable queue delivered one at a time, oldest first, whenever a connection
    is up, so none is lost to an outage or a restart. While connected with
    nothing queued, :meth:`send` sends one straight from the caller's thread
    like any other message; it is stored only if that fails (``send()`` then
    raises :class:`Queued`, whose ``handle`` completes on delivery;
    :meth:`send_queued` returns the handle). With ``queue_path`` it is written
    to the file first all the same (and deleted once answered): a crash while
    it is on the wire must not lose it, and one row costs far less than the
    round trip.

    Args:
        id: The charge point's identity: appended to ``url``'s path, the user name of
            ``password``, and the ``name`` of its threads.
        url: The CSMS's websocket URL without the id (``ws://host:9000/ocpp``); ``wss://``
            for TLS.
        version: The OCPP version spoken: ``"1.6"``, ``"2.0.1"`` or ``"2.1"``.
        timeout: Seconds :meth:`send` waits for an answer before CallTimeout, unless the
            call gives its own.
        headers: Extra HTTP headers for the upgrade request.
        lenient: Read the CSMS's messages leniently: unknown fields, over-long strings,
            zoneless timestamps and nulls pass with a logged warning instead of a
            ValidationError (for servers that break the schema).
        connect_timeout: Seconds the TCP connect and the handshake may take, and later
            a write that makes no progress.
        sslopt: TLS options in websocket-client's form (``{"cert_reqs": ...}``); give this
            or ``ssl_context``, not both.
        reconnect: Reopen a lost connection in the background (the default).
        retry_first_connect: Let :meth:`connect` keep trying with the back-off until the
            first connection opens, instead of raising HandshakeError at once.
        backoff: The delays between reconnect attempts (a :class:`BackOff`: doubling from
            5 s, plus up to 5 s at random, by default).
        ping_interval: Seconds of silence after which the CSMS is pinged; None: never.
        pong_timeout: Seconds a ping may go unanswered before the connection is given up.
        close_timeout: Seconds :meth:`close` gives calls in flight to be answered (1 s:
            an answer on its way takes milliseconds, and a close must not wait long behind a
            busy handler on the CSMS's side).
        queue_path: A sqlite file for the transaction queue, so queued messages survive a
            restart; None keeps them in memory.
        queue_max_messages: The most messages the queue holds; one more is refused (and
            ``on_message_dropped`` hears of it).
        transaction_retry: How often and how far apart a transaction message is sent again
            when the CSMS answers it with a CALLERROR or not at all, before it is given up
            (a :class:`TransactionRetry`).
        on_disconnect: ``hook(cp)``, in the reconnect thread, when the connection is lost.
        on_reconnect: ``hook(cp)``, in the reconnect thread, when it is open again.
        on_message_dropped: ``hook(cp, message, exception)`` when a queued message is given
            up or refused by a full queue.
        history_size: How many frames :attr:`history` keeps, across reconnects; None: all.
        history_bytes: The most characters of frame text :attr:`history` keeps (a bigger
            frame is kept as a placeholder; see :class:`History`); None: no bound.
        password: Security profiles 1 and 2: sent as HTTP Basic auth with the id as user;
            never logged, not in the repr.
        ssl_context: Security profiles 2 and 3: verifies the CSMS of a ``wss://`` URL and
            may carry the station's own certificate (see ``security.client_ssl_context``).
        max_message_size: A message from the CSMS over this many bytes closes the
            connection with 1009; None: 256 KiB, as for the CSMS.
        boot: A BootNotificationRequest that makes the charge point register itself
            (docs/registration.md): sent on every connection; the application's messages
            wait until the CSMS answers Accepted, a Pending or Rejected answer sends it
            again after its interval, and Heartbeats keep an idle connection alive.
    """

    def __init__(self, id: str, url: str, version: str = "1.6", timeout: float = 30.0,
                 headers: Mapping[str, str] | None = None, lenient: bool = False, *,
                 connect_timeout: float = 10.0, sslopt: dict[str, Any] | None = None,
                 reconnect: bool = True, retry_first_connect: bool = False,
                 backoff: BackOff | None = None, ping_interval: float | None = 30.0,
                 pong_timeout: float = 10.0, close_timeout: float = 1.0,
                 queue_path: str | os.PathLike[str] | None = None,
                 queue_max_messages: int = 10_000,
                 transaction_retry: TransactionRetry | None = None,
                 on_disconnect: Hook | None = None, on_reconnect: Hook | None = None,
                 on_message_dropped: DroppedHook | None = None,
                 history_size: int | None = DEFAULT_HISTORY_SIZE,
                 history_bytes: int | None = DEFAULT_HISTORY_BYTES,
                 password: str | bytes | None = None,
                 ssl_context: ssl.SSLContext | None = None, max_message_size: int | None = None,
                 boot: Any = None) -> None:
        if not id:
            raise ValueError("a charge point needs a non-empty id")
        check_url(url)
        self.id = id
        self.url = url
        self.version = check_version(version)
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.lenient = lenient
        self.connect_timeout = connect_timeout
        self.sslopt = sslopt
        self.ssl_context = ssl_context
        self.max_message_size = max_message_size
        self._password = password
        self.reconnect = reconnect
        self.retry_first_connect = retry_first_connect
        self.backoff = backoff if backoff is not None else BackOff()
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.close_timeout = close_timeout
        self.queue_path = queue_path
        self.queue_max_messages = queue_max_messages
        self.transaction_retry = transaction_retry if transaction_retry is not None else TransactionRetry()
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.on_message_dropped = on_message_dropped
        self.history = History(history_size, history_bytes)  # one for every connection this object opens
        self._metrics = MetricsTotals()  # so are the counts: see metrics()
        self._random: Callable[[], float] = random.random
        self._handlers: dict[type, Callable[[Any], Any]] = {}
        self._after: dict[type, list[Callable[[Any, Any], Any]]] = {}
        self._booter = None if boot is None else Booter(id, self.version, boot, self.history, self._registered)
        if self._booter is not None:
            self.after(version_module(self.version).REQUESTS["TriggerMessage"])(self._booter.triggered)
        # _lock guards every attribute below; it is never held while opening a websocket,
        # sending, joining a thread or running a hook.
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._queue: OfflineQueue | None = None
        self._outbox: Outbox | None = None
        self._outbox_started = False
        self._supervisor: threading.Thread | None = None
        # One session per connect() ... close(); a thread of an older session never touches a newer one.
        self._session = 0
        self._closed = False
        self._stop = threading.Event()       # set by close(): ends every wait at once
        self._link_down = threading.Event()  # set when the connection ends, and by close()
        self._up = threading.Event()         # set by the reconnect thread after each open
        self._fatal: OCPPError | None = None   # why the charge point stopped reconnecting

    def on(self, request_cls: type[Any]) -> Callable[[F], F]:
        """Decorator: answer the CSMS's ``request_cls`` calls with the decorated function."""
        check_handler_class(request_cls, (self.version,), "CSMS_TO_CS")

        def register(handler: F) -> F:
            check_handler(handler, ("request",), "charge point handlers")
            self._handlers[request_cls] = handler
            return handler

        return register

    def after(self, request_cls: type[Any]) -> Callable[[F], F]:
        """Decorator: ``hook(request, response)`` runs once our answer to the CSMS's
        ``request_cls`` call is on the wire, before its next call is handled.

        Not run when the answer was a CALLERROR; several hooks run in the order
        they were registered.
        """
        check_handler_class(request_cls, (self.version,), "CSMS_TO_CS")

        def register(hook: F) -> F:
            check_handler(hook, ("request", "response"), "after-answer hooks", "hook")
            self._after.setdefault(request_cls, []).append(hook)
            return hook

        return register

    def _find_after(self, request_cls: type) -> Callable[[Any, Any], None] | None:
        hooks = self._after.get(request_cls)
        return None if hooks is None else functools.partial(_run_hooks, self.id, list(hooks))

    @property
    def connected(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.closed

    @property
    def queued(self) -> int:
        """How many transaction messages wait in the offline queue (the one in flight included,
        even when it was sent straight from the caller's thread); before the queue is opened
        (the first connect or send), what a previous run left in ``queue_path``."""
        with self._lock:
            queue, outbox = self._queue, self._outbox
        if queue is None or queue.closed:
            return 0 if self.queue_path is None else stored_count(self.queue_path)
        return len(outbox) if outbox is not None and outbox.queue is queue else len(queue)

    # -- connecting ---------------------------------------------------------

    def connect(self) -> None:
        """Open the websocket; returns once it is open.

        Raises HandshakeError if it cannot, unless ``retry_first_connect``: then
        it keeps trying with the back-off until it is open, a refusal is
        permanent (raised), or :meth:`close` is called (ConnectionClosed).
        ValueError if both ``ssl_context`` and ``sslopt`` are set.
        """
        if self.ssl_context is not None and self.sslopt is not None:
            raise ValueError("give ssl_context or sslopt, not both")
        self._warn_unanswered()
        with self._lock:
            if self.connected or (self._supervisor is not None and self._supervisor.is_alive()):
                raise RuntimeError(f"{self.id} is already connected (or reconnecting)")
            if self._closed:
                self._closed = False
                self._stop = threading.Event()
                self._link_down = threading.Event()
            self._up.clear()
            self._fatal = None
            session = self._session
            outbox = self._outbox_locked()
        if self.retry_first_connect:
            self._start_background(outbox, session, first=True)
            if not self._wait_up(session):
                raise ConnectionClosed(f"{self.id} was closed before it could connect")
            if self._fatal is not None:
                raise self._fatal
            return
        self._open(session)
        self._start_background(outbox, session, first=False)

    def _outbox_locked(self) -> Outbox:
        if self._queue is None or self._queue.closed:
            self._queue = OfflineQueue(self.queue_path, max_messages=self.queue_max_messages)
        if self._outbox is None:
            self._outbox = Outbox(self._queue, version=self.version, name=f"ocpp-{self.id}",
                                  timeout=self.timeout, retry=self.transaction_retry,
                                  on_dropped=self._dropped)
            self._outbox_started = False
        return self._outbox

    def _start_background(self, outbox: Outbox, session: int, *, first: bool) -> None:
        with self._lock:
            if self._session != session or self._outbox is not outbox:
                return  # close() came first: it owns the cleanup
            start_outbox = not self._outbox_started
            self._outbox_started = True
            self._supervisor = threading.Thread(target=self._supervise,
                                                args=(first, self._session, self._stop),
                                                name=f"ocpp-{self.id}-reconnect", daemon=True)
            supervisor = self._supervisor
        if start_outbox:
            outbox.start()
        supervisor.start()

    def _wait_up(self, session: int) -> bool:
        while not self._up.wait(0.5):
            with self._lock:
                if self._session != session or self._stop.is_set():
                    return False
        return self._session == session

    def _open(self, session: int) -> Connection:
        """One attempt to connect; raises HandshakeError, or ConnectionClosed if close() came first."""
        transport = open_websocket(self.url, self.id, subprotocols=[f"ocpp{self.version}"],
                                   headers=self.headers, timeout=self.connect_timeout,
                                   sslopt=self.sslopt, ping_interval=self.ping_interval,
                                   pong_timeout=self.pong_timeout, password=self._password,
                                   ssl_context=self.ssl_context, max_message_size=self.max_message_size)
        with self._lock:
            if self._session != session or self._closed:
                current = False
            else:
                current = True
                link_down = self._link_down
                link_down.clear()
                connection = Connection(transport, name=f"ocpp-{self.id}", version=self.version,
                                        role=CS, find_handler=self._find_handler,
                                        find_after=self._find_after,
                                        timeout=self.timeout, lenient=self.lenient,
                                        on_close=self._link_lost(link_down), history=self.history,
                                        metrics=self._metrics.attach(self.version))
                self._connection = connection
                outbox = self._outbox
        if not current:  # close() raced with the handshake
            transport.close(1001, "closing")
            raise ConnectionClosed(f"{self.id} was closed")
        connection.start()
        if outbox is not None and self._booter is None:   # with a boot: once Accepted
            outbox.online(connection)
        return connection

    def _link_lost(self, link_down: threading.Event) -> Callable[[], None]:
        booter = self._booter
        if booter is None:
            return link_down.set

        def lost() -> None:
            link_down.set()
            booter.wake()
        return lost

    def _find_handler(self, request_cls: type) -> Callable[[Any], Any] | None:
        handler = self._handlers.get(request_cls)
        if handler is None and self._booter is not None and request_cls.__name__ == "TriggerMessageRequest":
            return self._booter.answer_trigger
        return handler

    def _registered(self, connection: Connection) -> None:
        """The CSMS accepted our boot on ``connection``: the offline queue may deliver."""
        with self._lock:
            outbox = self._outbox if self._connection is connection else None
        if outbox is not None:
            outbox.online(connection)

    def _supervise(self, first: bool, session: int, stop: threading.Event) -> None:
        while not stop.is_set():
            if not first:
                with self._lock:
                    link_down, connection = self._link_down, self._connection
                if self._booter is not None and connection is not None:
                    self._booter.serve(connection, link_down)
                link_down.wait()
                if stop.is_set():
                    return
                with self._lock:
                    outbox, connection = self._outbox, self._connection
                if outbox is not None:
                    outbox.offline()
                replaced = connection is not None and connection.peer_close_code == CLOSE_REPLACED
                if replaced:
                    log.error("%s: the CSMS took a newer connection under this id; not reconnecting",
                              self.id)
                    self._fatal = Replaced(f"{self.id} was replaced by a newer connection under the "
                                           "same id: close the other one, or give this one its own id")
                self._hook(self.on_disconnect)
                if replaced or not self.reconnect:
                    return
            if not self._reopen(first, session, stop):
                return
            if not first:
                self._hook(self.on_reconnect)
            first = False
            self._up.set()

    def _reopen(self, first: bool, session: int, stop: threading.Event) -> bool:
        """Try until connected (True), or until closed or refused for good (False)."""
        delays = self.backoff.delays(self._random)  # a fresh schedule for every outage
        wait = not first
        while not stop.is_set():
            if wait and self._wait_before_reconnect(next(delays)):
                return False
            wait = True
            try:
                self._open(session)
                return True
            except HandshakeError as exc:
                if exc.permanent:
                    log.error("%s: giving up reconnecting: %s", self.id, exc)
                    self._fatal = exc
                    self._up.set()
                    return False
                log.info("%s: connecting failed: %s", self.id, exc)
            except ConnectionClosed:
                return False
        return False

    def _wait_before_reconnect(self, delay: float) -> bool:
        """The one place the reconnect loop sleeps; True if close() interrupted it."""
        log.info("%s: reconnecting in %.1f s", self.id, delay)
        return self._stop.wait(delay)

    def _hook(self, hook: Hook | None) -> None:
        if hook is None:
            return
        try:
            hook(self)
        except Exception:
            log.exception("%s: the %s hook failed", self.id, getattr(hook, "__name__", "connection"))

    def _dropped(self, message: QueuedMessage, exc: BaseException) -> None:
        hook = self.on_message_dropped
        if hook is not None:
            hook(self, message, exc)

    # -- sending ------------------------------------------------------------

    def _live(self) -> Connection:
        connection = self._connection
        if connection is None or connection.closed:
            if self._fatal is not None:
                raise self._fatal
            raise ConnectionClosed(f"{self.id} is not connected")
        if self._booter is not None and not self._booter.accepted.is_set():
            self._booter.wait_accepted(self.timeout)   # our messages wait for the boot's answer
        return connection

    def send(self, message: Any, timeout: float | None = None) -> Any:
        """Send a request and block for the response object.

        Raises CallError, CallTimeout, ConnectionClosed, or ValidationError
        (before sending) for an invalid request. ``timeout`` covers waiting for
        our turn as well as for the answer.

        A transaction message keeps the offline queue's order: it is sent from
        this thread when connected with nothing queued or in flight, else
        queued. Its response comes back if it is answered within ``timeout``.
        Else :class:`Queued` is raised, whose ``handle`` (a :class:`QueuedCall`)
        delivery completes later: at once when offline or when the link is
        lost before the answer (the message is then sent again after the
        reconnect), after ``timeout`` while a retry is pending. The CallError
        or CallTimeout that made it give up (the retries spent) is raised if
        that happens within ``timeout``. A ``timeout`` shorter than the charge
        point's always goes through the queue, so that it bounds the wait
        without cutting the call short. :meth:`send_queued` returns the handle
        instead.
        """
        info = _info(message)
        if not is_queued(self.version, info.action):
            return self._live().send(message, timeout)
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        payload, outbox = self._transaction_payload(message, info)
        if wait >= self.timeout:
            handle, response = outbox.send_now(info.action, payload)
            if handle is None:
                return response
        else:
            handle = outbox.submit(info.action, payload)
        online = self.connected and outbox.is_online
        if not handle.done() and online:
            concurrent.futures.wait([handle], max(0.0, deadline - time.monotonic()))
        if handle.done():
            return handle.result()  # answered, or given up: raises why
        raise Queued(handle, f"not answered within {wait:g} s" if online else f"{self.id} is offline")

    def send_queued(self, message: Any) -> QueuedCall:
        """Send a transaction message as :meth:`send` does, but return its handle in every case.

        The handle is done when the message was answered from this thread (or
        given up), else it completes when delivery does; a 1.6
        StartTransaction's handle has the placeholder ``transaction_id`` its
        transaction's later messages carry until the CSMS's id is known.
        Raises ValueError for a message that does not go through the offline
        queue, ValidationError (before anything is queued) for an invalid one.
        """
        info = _info(message)
        if not is_queued(self.version, info.action):
            raise ValueError(f"{info.action} does not go through the offline queue; use send()")
        payload, outbox = self._transaction_payload(message, info)
        return outbox.send(info.action, payload)

    def send_async(self, message: Any, timeout: float | None = None) -> Future[Any]:
        """Like :meth:`send`, but returns a Future at once (a QueuedCall for a transaction message,
        which is always queued: its send does not block this thread)."""
        info = _info(message)
        if not is_queued(self.version, info.action):
            return self._live().send_async(message, timeout)
        payload, outbox = self._transaction_payload(message, info)
        return outbox.submit(info.action, payload)

    def _transaction_payload(self, message: Any, info: MessageInfo) -> tuple[dict[str, Any], Outbox]:
        """A transaction message's wire payload, converted and validated once, and the outbox that carries it."""
        if info.version != self.version or not info.is_request:
            raise ValueError(f"{type(message).__name__} is not an OCPP {self.version} request")
        payload = to_payload(message)  # ValidationError before anything is queued
        with self._lock:
            if self._closed:
                raise ConnectionClosed(f"{self.id} is closed")
            outbox = self._outbox_locked()
        # 2.x: the event happened while offline. The outbox knows of a lost link (a send that
        # failed) a moment before the connection's workers have ended.
        if info.action == "TransactionEvent" and "offline" not in payload and \
                not (self.connected and outbox.is_online):
            payload["offline"] = True
        return payload, outbox

    def call(self, action: str, payload: Mapping[str, Any],
             timeout: float | None = None) -> dict[str, Any] | None:
        """Send a wire-format payload and get the wire-format response, both validated.

        Raises as :meth:`send` does (Queued for a transaction message kept for later).
        """
        if not is_queued(self.version, action):
            return call_with_dict(self._live(), action, payload, timeout)
        request = from_payload(version_module(self.version).REQUESTS[action], dict(payload))
        return to_payload(self.send(request, timeout))

    # -- closing ------------------------------------------------------------

    def expect(self, request_cls: type[R], timeout: float | None = 30.0,
               where: Callable[[R], bool] | None = None) -> R:
        """The next ``request_cls`` request from the CSMS (``where`` holding) once answered.

        Requests that came before the call count too, each returned once;
        see :meth:`History.expect`.
        """
        return self.history.expect(request_cls, timeout, where)

    def close(self, timeout: float | None = None) -> None:
        """Stop reconnecting, let calls in flight finish (bounded), close, join the threads.

        Calls in flight get ``timeout`` seconds (default :attr:`close_timeout`) to be
        answered: 0 closes at once, failing them, when no answer is worth waiting for.
        Idempotent; a later :meth:`connect` starts over. Queued messages stay
        in the queue file for the next run.
        """
        drain = self.close_timeout if timeout is None else max(0.0, timeout)
        with self._lock:
            self._closed = True
            self._session += 1
            connection, self._connection = self._connection, None
            outbox, self._outbox = self._outbox, None
            supervisor, self._supervisor = self._supervisor, None
            queue = self._queue
            if self.queue_path is not None:
                self._queue = None
            stop, link_down = self._stop, self._link_down
        stop.set()
        link_down.set()
        if self._booter is not None:
            self._booter.wake()
        if outbox is not None:
            outbox.offline()  # nothing more goes out; the one in flight may finish
        if connection is not None:
            connection.close(drain=drain)
        if outbox is not None:
            outbox.stop()
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(self.connect_timeout + 1.0)
            if supervisor.is_alive():
                log.warning("%s: the reconnect thread did not stop in time", self.id)
        if queue is not None and self.queue_path is not None:
            queue.close()

    def __enter__(self) -> ChargePoint:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Ctrl-C (or SystemExit) out of the block: the user wants out, not answers to wait for.
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        self.close(0.0 if interrupted else None)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<ChargePoint {self.id!r} OCPP {self.version} {self.url} {state}>"
