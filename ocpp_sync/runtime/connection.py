"""One OCPP-J connection: a transport served by two worker threads.

Two roles move between the workers. Reading: one thread at a time reads the
socket, resolves the futures of our own calls and takes in the peer's calls.
Handling: one thread at a time runs the peer's calls' handlers, in arrival
order, as OCPP expects. A worker that reads a peer's call leaves the socket
and runs the handler itself, so the answer goes out without a hand-off
between threads (leader/follower); the other worker reads while it runs,
whenever something needs reading, so a slow handler never delays the answer
to a call we made, and a handler may itself call :meth:`Connection.send`
without deadlock. Calls that come while a handler runs queue behind it.

OCPP allows one outstanding CALL per direction, so our calls form a FIFO queue
and the next one is written only when the current one is answered, has timed
out or the connection is gone.

The reader never wakes up on a timer: a blocking send() times its own call
out, and the shared timer of ``_deadlines`` times out send_async() calls.

A blocking send() that finds nobody reading reads the socket itself until
its answer comes (queueing the peer's calls for the workers), so a sequential
caller gets its answer without a hand-off between threads either. A worker
steps back after handing an answer to a blocking caller and takes the socket
again once no such caller has read for ``_LAZY_READER`` seconds, or at once
when someone needs it (an async call in flight, a caller waiting behind
another, the end of the stream).

On a server, the connections take turns (``_turnstile``): a thread that has
read a message waits for its turn, in arrival order across connections, and
holds it while the library works on that message, never while user code runs
or while it waits for the peer.

Nobody is woken per message: the worker that leaves the socket for a handler
wakes the other only when it sleeps, and a worker wakes up every ``_WATCH``
seconds while handlers run, in case one runs long with nobody reading (the
peer's pings and close would wait). While callers read, one worker looks
every ``_LAZY_READER`` seconds and the other sleeps; an idle connection's
workers both sleep.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ocpp_sync.errors import (
    FORMAT,
    CallError,
    CallTimeout,
    ConnectionClosed,
    OCPPError,
    ProtocolError,
    ValidationError,
    error_code,
)
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.frames import (
    CALLERROR,
    CALLRESULT,
    CALLRESULTERROR,
    Call,
    CallErrorFrame,
    CallResult,
    Frame,
    FramingError,
    Send,
    new_message_id,
    parse,
    serialise,
)
from ocpp_sync.protocol.versions import message_info, version_module
from ocpp_sync.runtime.history import History
from ocpp_sync.scheduling.deadlines import TIMER
from ocpp_sync.scheduling.turnstile import Turnstile
from ocpp_sync.security import redact_secrets
from ocpp_sync.websocket.base import Transport

__all__ = ["Connection", "CS", "CSMS", "call_with_dict"]

log = logging.getLogger("ocpp_sync.connection")

CS = "cs"  # we are the charge point
CSMS = "csms"  # we are the central system

Handler = Callable[[Any], Any]

_JOIN_TIMEOUT = 5.0
# How long the reader leaves the socket to blocking callers after one has read: the
# longest a frame nobody asked for waits when a run of calls ends. While callers keep
# the socket the reader wakes this often to look, once per station: at 5 ms, 100
# stations calling from one process cost 20,000 wake-ups a second and a longer p99.
_LAZY_READER = 0.05
# How often a worker looks at a socket nobody reads while handlers run: only pings and the
# peer's close wait that long (our calls' answers wake a worker at once).
_WATCH = 1.0
_READ = "read"
_HANDLE = "handle"
_MAX_DESCRIPTION = 255
_REMEMBERED_EXPIRED = 64

_CODES_16 = frozenset({
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError",
})
_CODES_2X = frozenset({
    "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
    "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
    "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError", "SecurityError",
    "TypeConstraintViolation",
})
_TO_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "FormationViolation",
}
_TO_2X = {
    "FormationViolation": "FormatViolation",
    "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
}


def wire_code(code: str, version: str) -> str:
    """The code to put on the wire for an error a handler raised.

    Codes are respelled for the version; a code the version does not define
    (say "Timeout" from a CallTimeout escaping a handler) becomes InternalError
    rather than confusing the peer.
    """
    if version == "1.6":
        code = _TO_16.get(code, code)
        return code if code in _CODES_16 else "InternalError"
    code = _TO_2X.get(code, code)
    return code if code in _CODES_2X else "InternalError"


def _settle(pending: _Pending, result: Any = None, exc: BaseException | None = None) -> None:
    """Resolve a call's future unless the user cancelled it or it is already resolved."""
    try:
        if exc is not None:
            pending.future.set_exception(exc)
        else:
            pending.future.set_result(result)
    except InvalidStateError:
        pass
    pending.settled = True   # after the future: whoever sees the flag finds the outcome there


class _Pending:
    """One of our calls: queued, then on the wire, then answered."""

    __slots__ = ("unique_id", "action", "text", "response_cls", "future", "deadline", "timeout",
                 "blocking", "settled")

    def __init__(self, unique_id: str, action: str, text: str, response_cls: type,
                 timeout: float, blocking: bool) -> None:
        self.blocking = blocking   # a send() caller waits for it and reads its answer if it can
        self.settled = False       # its future has its outcome: cheaper to test than Future.done()
        self.unique_id = unique_id
        self.action = action
        self.text = text
        self.response_cls = response_cls
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.future: Future[Any] = Future()


class Connection:
    """The RPC layer over one open transport, for one side (``CS`` or ``CSMS``).

    ``find_handler(request_cls)`` returns the callable that answers a request of
    that class (request -> response), or None. ``on_close`` runs once, in the
    worker that read the end, when the connection ends for any reason.

    ``max_bad_messages`` malformed frames in a row (None: no limit) close the
    connection with 1008, after ``on_bad_messages(count)`` has run in the reading thread:
    a peer that only sends garbage should not hold a connection and a thread.

    ``turnstile``, shared by the connections of one server, makes them work on the
    messages they read in arrival order (see ``_turnstile``): a thread takes a turn
    once it has read a message and steps out of it to run user code.
    """

    def __init__(self, transport: Transport, *, name: str, version: str, role: str,
                 find_handler: Callable[[type], Handler | None], timeout: float = 30.0,
                 lenient: bool = False, on_close: Callable[[], None] | None = None,
                 history: History | None = None, max_bad_messages: int | None = None,
                 on_bad_messages: Callable[[int], None] | None = None,
                 turnstile: Turnstile | None = None) -> None:
        if max_bad_messages is not None and max_bad_messages < 1:
            raise ValueError("max_bad_messages must be at least 1 (or None)")
        if role not in (CS, CSMS):
            raise ValueError(f"role must be {CS!r} or {CSMS!r}, not {role!r}")
        self.name = name
        self.version = version
        self.timeout = timeout
        self.lenient = lenient
        self._transport = transport
        self._module = version_module(version)
        if role == CS:
            self._incoming, self._outgoing = self._module.CSMS_TO_CS, self._module.CS_TO_CSMS
        else:
            self._incoming, self._outgoing = self._module.CS_TO_CSMS, self._module.CSMS_TO_CS
        self._find_handler = find_handler
        self._on_close = on_close
        self._history = history
        self._max_bad_messages = max_bad_messages
        self._on_bad_messages = on_bad_messages
        self._turnstile = turnstile
        self._bad_frames = 0  # malformed frames in a row; only the reading thread counts them
        # _lock guards _current, _queue, _expired, _handling, _closing, the reading role
        # (_reading_thread, _waiting_callers, _lazy_until, _stream_ended) and the handling
        # role (_work, _handler_running, _handlers_run, _sleeper, _watcher, _ended, _workers).
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when no call is queued or on the wire
        self._wake = threading.Condition(self._lock)  # workers wait here for a role
        self._reading_thread: int | None = None   # the thread reading the socket now, if any
        self._waiting_callers = 0                 # blocking callers waiting for another to read
        self._lazy_until = 0.0                    # workers leave the socket to callers until then
        self._stream_ended = False                # a caller saw the end: only workers read now
        self._work: collections.deque[tuple[Any, ...]] = collections.deque()  # for the handler
        self._handler_running = False             # a worker holds the handling role
        self._handlers_run = 0                    # tells a watching worker whether handlers run
        self._sleeper: int | None = None          # the worker waiting without a timeout
        self._watcher: int | None = None          # the worker looking again soon for a caller
        self._ended = False                       # the end was dealt with: workers leave
        self._workers: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._current: _Pending | None = None
        self._queue: collections.deque[_Pending] = collections.deque()
        self._expired: collections.deque[str] = collections.deque(maxlen=_REMEMBERED_EXPIRED)
        self._handling: set[str] = set()
        self._closing = False
        self._finished = threading.Event()

    @property
    def remote_address(self) -> str:
        return getattr(self._transport, "remote_address", "")

    @property
    def closed(self) -> bool:
        return self._finished.is_set()

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    # -- life cycle -------------------------------------------------------

    def start(self) -> None:
        """Serve the connection from two new threads; returns at once."""
        for number in (1, 2):
            self._start_worker(number)

    def run(self) -> None:
        """Serve the connection with the calling thread as one of its two workers, until it ends.

        For servers that give each connection its own thread already.
        """
        other = self._start_worker(2)
        thread = threading.current_thread()
        old_name, thread.name = thread.name, f"{self.name}-worker1"
        try:
            self._work_loop()
            self._join(other)
        finally:
            thread.name = old_name

    def _start_worker(self, number: int) -> threading.Thread:
        thread = threading.Thread(target=self._work_loop, name=f"{self.name}-worker{number}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def run_task(self, task: Callable[[], None]) -> None:
        """Run ``task`` in a worker, after the peer's calls already in and before later ones.

        A server's on-connect callback goes here: it may then call send(),
        and the station's first calls wait until it is done.
        """
        with self._lock:
            self._queue_work_locked((task,))

    def close(self, code: int = 1000, reason: str = "", *, drain: float = 0.0) -> None:
        """Close the websocket, fail every pending call, stop both threads. Idempotent.

        ``drain`` seconds at most are given to calls already queued or on the wire
        to be answered first, so a clean shutdown does not lose an answer in flight.
        """
        # The thread reading now (a done-callback closing, say) sees the end itself once
        # this returns: waiting for it here would wait for ourselves.
        reading = threading.get_ident() == self._reading_thread
        if drain > 0 and not reading:
            with self._idle:
                self._idle.wait_for(
                    lambda: (self._current is None and not self._queue) or self._finished.is_set(),
                    drain)
        self._fail_all(ConnectionClosed("the connection was closed"))
        TIMER.stop_if_idle()
        try:
            self._transport.close(code, reason)
        except Exception:  # the transport may already be gone; we are closing anyway
            log.debug("%s: error closing the transport", self.name, exc_info=True)
        if reading:
            return
        if not self._finished.wait(_JOIN_TIMEOUT):
            log.warning("%s: the connection did not end within %.0f s", self.name, _JOIN_TIMEOUT)
        for thread in self._threads:
            self._join(thread)

    def _join(self, thread: threading.Thread) -> None:
        if thread is threading.current_thread() or thread.ident is None:
            return
        thread.join(_JOIN_TIMEOUT)
        if thread.is_alive():
            log.warning("%s: %s did not stop within %.0f s", self.name, thread.name, _JOIN_TIMEOUT)

    def _log_frame(self, direction: str, text: str) -> None:
        if self._history is not None:
            self._history.frame(direction, text)
        # Frames can carry station passwords (AuthorizationKey, BasicAuthPassword): never log those.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s", self.name, direction, redact_secrets(text))

    # -- our calls ----------------------------------------------------------

    def send(self, message: Any, timeout: float | None = None) -> Any:
        """Send a request and block for its response (None for a 2.1 SEND)."""
        action = self._outgoing_action(message)
        return self.send_payload(action, to_payload(message), timeout)

    def send_payload(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> Any:
        """Send a request given as its wire payload, validated already, and block for its response.

        The layers above convert a message once (the charge point's outbox keeps
        payloads, not objects) and hand the payload down through here.
        """
        me = threading.get_ident()
        if me == self._reading_thread:
            # The answer could never be read: this thread is the one that reads it.
            raise RuntimeError("send() blocks the reading thread that would read its answer "
                               "(from a future's done-callback, say); use send_async()")
        future, pending = self._submit(action, payload, timeout, blocking=True)
        if pending is None:
            return future.result()
        while not pending.settled:
            remaining = pending.deadline - time.monotonic()
            if remaining <= 0:
                self._expire(pending)
                break
            with self._lock:
                read = self._reading_thread is None and not (self._closing or self._stream_ended)
                if read:
                    self._reading_thread = me
                else:
                    self._waiting_callers += 1
            if read:
                self._read_until_answered(pending)
                continue
            try:
                future.exception(timeout=remaining)
            except FutureTimeout:
                pass
            finally:
                with self._lock:
                    self._waiting_callers -= 1
            if future.done():
                # The flag is set just after the future: a caller woken in between must not
                # take the socket and read for an answer that has come already.
                break
        return future.result(timeout=0)

    def _read_until_answered(self, pending: _Pending) -> None:
        """Hold the reading role until ``pending`` is settled, its deadline passes or the stream ends."""
        ended = False
        try:
            while not pending.settled:
                remaining = pending.deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    if not self._read_and_handle(remaining):
                        ended = True
                        break
                except TimeoutError:
                    break
        finally:
            with self._lock:
                self._reading_thread = None
                self._lazy_until = time.monotonic() + _LAZY_READER
                if ended:
                    self._stream_ended = True
                if ended or self._closing or self._unread_call_locked():
                    self._wake.notify()

    def send_async(self, message: Any, timeout: float | None = None) -> Future[Any]:
        """Queue a request; the future gets the response or the error.

        Done-callbacks run in the thread that read the answer (a worker, or a
        thread blocked in send()), or the timer thread for a timeout: keep them short.
        """
        future, pending = self._submit(self._outgoing_action(message), to_payload(message), timeout,
                                       blocking=False)
        if pending is not None:
            deadline = TIMER.schedule(pending.deadline, lambda: self._expire(pending))
            future.add_done_callback(lambda _: TIMER.cancel(deadline))
        return future

    def _outgoing_action(self, message: Any) -> str:
        """The action of a request this side may send on this connection, or why not."""
        try:
            info = message_info(message)
        except (TypeError, KeyError, AttributeError, ValueError):
            raise TypeError(f"not an OCPP message: {message!r}") from None
        if info.version != self.version:
            raise ValueError(f"{type(message).__name__} is an OCPP {info.version} message, "
                             f"this connection speaks {self.version}")
        if not info.is_request:
            raise ValueError(f"{type(message).__name__} is a response; send requests")
        if info.action not in self._outgoing:
            raise ValueError(f"{info.action} is not sent in this direction in OCPP {self.version}")
        return info.action

    def _submit(self, action: str, payload: dict[str, Any], timeout: float | None,
                blocking: bool) -> tuple[Future[Any], _Pending | None]:
        seconds = self.timeout if timeout is None else timeout
        response_cls = self._module.RESPONSES.get(action)
        if response_cls is None:  # a 2.1 SEND: written at once, never answered
            if self._closing:
                raise ConnectionClosed("the connection is closed")
            text = serialise(Send(new_message_id(), action, payload))
            self._log_frame(">", text)
            self._transport.send(text)
            done: Future[Any] = Future()
            done.set_result(None)
            return done, None
        unique_id = new_message_id()
        pending = _Pending(unique_id, action, serialise(Call(unique_id, action, payload)),
                           response_cls, seconds, blocking)
        with self._lock:
            if self._closing:
                raise ConnectionClosed("the connection is closed")
            self._queue.append(pending)
            start = self._next_locked() if self._current is None else None
        if start is not None:
            self._write_call(start)
        return pending.future, pending

    def _next_locked(self) -> _Pending | None:
        """Make the first live queued call current; the caller writes it after unlocking."""
        while self._queue:
            pending = self._queue.popleft()
            if pending.future.set_running_or_notify_cancel():
                self._current = pending
                if self._reading_thread is None and self._unread_call_locked():
                    self._wake.notify()
                return pending
        self._idle.notify_all()
        return None

    def _write_call(self, pending: _Pending) -> None:
        self._log_frame(">", pending.text)
        try:
            self._transport.send(pending.text)
        except Exception as exc:
            log.debug("%s: writing a call failed: %s", self.name, exc)
            self._step_out()   # failing the calls runs their done-callbacks; closing waits
            self._fail_all(ConnectionClosed(f"the connection is gone: {exc}"))
            self._close_transport()

    def _expire(self, pending: _Pending) -> None:
        with self._lock:
            start = None
            if self._current is pending:
                self._current = None
                self._expired.append(pending.unique_id)
                start = self._next_locked()
            elif pending in self._queue:
                self._queue.remove(pending)
        _settle(pending, exc=CallTimeout(
            f"no answer to {pending.action} within {pending.timeout:g} s"))
        if start is not None:
            self._write_call(start)

    def _take_current(self, unique_id: str) -> tuple[_Pending | None, _Pending | None]:
        """Detach the current call if it has this id; also return the call to write next."""
        with self._lock:
            pending = self._current
            if pending is None or pending.unique_id != unique_id:
                late = unique_id in self._expired
                pending = None
            else:
                self._current = None
            start = self._next_locked() if pending is not None else None
        if pending is None:
            if late:
                log.warning("%s: dropped a late response to %s (its call had timed out)",
                         self.name, unique_id)
            else:
                log.warning("%s: dropped a response to %s, which no call is waiting for",
                            self.name, unique_id)
        return pending, start

    def _settle_read(self, pending: _Pending, result: Any = None,
                     exc: BaseException | None = None) -> None:
        """Settle a call whose answer this thread read. A worker then leaves the socket to
        the blocking caller, which reads its own next answer; only now, not before: a
        caller that took the socket sooner would read for an answer already in."""
        self._step_out()   # a future's done-callbacks run here
        _settle(pending, result, exc)
        me = threading.get_ident()
        # Unlocked first look: only this thread moves the role away from itself, and the
        # usual reader here is the caller itself, which keeps the socket.
        if not pending.blocking or self._reading_thread != me or me not in self._workers:
            return
        with self._lock:
            if self._reading_thread == me and self._current is None and not self._closing:
                self._reading_thread = None
                self._lazy_until = time.monotonic() + _LAZY_READER

    def _fail_all(self, exc: ConnectionClosed) -> None:
        with self._lock:
            self._closing = True
            failed = list(self._queue)
            self._queue.clear()
            if self._current is not None:
                failed.append(self._current)
                self._current = None
            self._idle.notify_all()
            self._wake.notify_all()
        for pending in failed:
            _settle(pending, exc=exc)

    # -- reading ----------------------------------------------------------

    def _work_loop(self) -> None:
        me = threading.get_ident()
        with self._lock:
            self._workers.add(me)
        while True:
            job = self._next_job(me)
            if job is None:
                return
            if job is _HANDLE:
                self._handle_queued()
            elif not self._read_and_handle():
                self._end()

    def _next_job(self, me: int) -> str | None:
        """Wait for a role: the handling one if work waits, else reading; None: leave."""
        if self._reading_thread == me:
            return _READ   # only this thread takes the role from itself, so no lock is needed
        seen = -1
        with self._lock:
            while True:
                if self._work and not self._handler_running:
                    self._handler_running = True
                    return _HANDLE
                if self._ended:
                    return None
                holder = self._reading_thread
                if self._may_read_locked():
                    self._reading_thread = me
                    return _READ
                wait: float | None = None
                if holder in self._workers:
                    if self._closing:
                        return None   # the other worker reads the end
                    if seen != self._handlers_run:   # handlers run: look again in a while
                        seen = self._handlers_run
                        wait = _WATCH
                elif self._watcher in (None, me):
                    # A caller reads, or will again soon: one worker looks again then.
                    self._watcher = me
                    wait = _LAZY_READER if holder is not None else \
                        self._lazy_until - time.monotonic()
                if wait is None:
                    self._sleeper = me
                self._wake.wait(wait)
                if self._sleeper == me:
                    self._sleeper = None
                if self._watcher == me:
                    self._watcher = None

    def _may_read_locked(self) -> bool:
        """Nobody reads, and a worker should: no caller is about to, or someone needs it now."""
        return self._reading_thread is None and not self._ended and (
            time.monotonic() >= self._lazy_until or self._closing or self._stream_ended
            or self._unread_call_locked())

    def _end(self) -> None:
        """The stream ended, read by this worker: fail what waits, let the workers go, report."""
        self._fail_all(ConnectionClosed("the connection was lost"))
        TIMER.stop_if_idle()
        self._close_transport()
        with self._lock:
            self._ended = True
            self._reading_thread = None
            self._wake.notify_all()
        self._finished.set()
        log.debug("%s: connection ended", self.name)
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:
                log.exception("%s: the on-close callback failed", self.name)

    def _read_and_handle(self, timeout: float | None = None) -> bool:
        """Read one message and handle it; False once the stream has ended.

        With a ``timeout``, TimeoutError says that nothing came in time.
        """
        try:
            text = self._transport.receive(timeout)
        except Exception as exc:
            if timeout is not None and isinstance(exc, TimeoutError):
                raise
            log.debug("%s: receive failed: %s", self.name, exc)
            return False
        if text is None:
            return False
        turnstile = self._turnstile
        if turnstile is not None:
            turnstile.enter()
        try:
            self._on_text(text)
        except Exception:
            log.exception("%s: failed to process a message", self.name)
        finally:
            if turnstile is not None:
                turnstile.leave()
        return True

    def _unread_call_locked(self) -> bool:
        """A call is on the wire and no caller of its own will read its answer."""
        current = self._current
        return current is not None and (not current.blocking or self._waiting_callers > 0)

    def _close_transport(self, code: int = 1000, reason: str = "") -> None:
        try:
            self._transport.close(code, reason)
        except Exception:
            log.debug("%s: error closing the transport", self.name, exc_info=True)

    def _on_text(self, text: str) -> None:
        self._log_frame("<", text)
        try:
            frame = parse(text, self.version)
        except FramingError as exc:
            self._on_bad_frame(exc)
            self._count_bad_frame()
            return
        self._bad_frames = 0
        if isinstance(frame, CallResult):
            self._on_result(frame)
        elif isinstance(frame, Call):
            self._on_call(frame)
        elif isinstance(frame, Send):
            self._on_send(frame)
        elif frame.message_type == CALLRESULTERROR:
            log.warning("%s: the peer rejected our response to %s: %s %s", self.name,
                        frame.unique_id, frame.code, frame.description)
        else:
            self._on_error(frame)

    def _on_bad_frame(self, exc: FramingError) -> None:
        log.warning("%s: bad frame from the peer: %s", self.name, exc.description)
        if exc.message_type in (CALLERROR, CALLRESULTERROR):
            # Never answer an error with an error: two peers could trade them forever.
            self._fail_current(exc.unique_id, ProtocolError(exc.description))
            return
        message_type = CALLERROR
        if exc.message_type == CALLRESULT:
            self._fail_current(exc.unique_id, ProtocolError(exc.description))
            if self.version == "2.1":
                message_type = CALLRESULTERROR
        self._send_frame(CallErrorFrame(exc.unique_id, exc.code, exc.description, {},
                                        message_type))

    def _count_bad_frame(self) -> None:
        """Close the connection once the peer has spent its budget of malformed frames."""
        self._bad_frames += 1
        if self._max_bad_messages is None or self._bad_frames < self._max_bad_messages:
            return
        count = self._bad_frames
        self._step_out()   # a callback runs, and closing waits for the peer
        log.warning("%s: %d malformed messages in a row: closing the connection", self.name, count)
        if self._on_bad_messages is not None:
            try:
                self._on_bad_messages(count)
            except Exception:
                log.exception("%s: the bad-messages callback failed", self.name)
        self._close_transport(1008, "too many malformed messages")

    def _fail_current(self, unique_id: str, exc: Exception) -> None:
        with self._lock:
            if self._current is None or self._current.unique_id != unique_id:
                return
        pending, start = self._take_current(unique_id)
        if pending is not None:
            self._settle_read(pending, exc=exc)
        if start is not None:
            self._write_call(start)

    def _on_result(self, frame: CallResult) -> None:
        pending, start = self._take_current(frame.unique_id)
        if start is not None:
            self._write_call(start)
        if pending is None:
            return
        try:
            response: Any = from_payload(pending.response_cls, frame.payload, lenient=self.lenient)
        except (ValidationError, RecursionError) as exc:
            # RecursionError: free-form data nested deeper than the codec can walk (see
            # _check_request); the caller learns it now rather than by a timeout.
            failure: OCPPError = exc if isinstance(exc, ValidationError) else ProtocolError(
                f"the {pending.action} response is nested too deep to read",
                code=error_code(FORMAT, self.version))
            log.warning("%s: invalid %s response: %s", self.name, pending.action, failure)
            self._settle_read(pending, exc=failure)
            if self.version == "2.1":
                self._send_frame(CallErrorFrame(frame.unique_id, failure.code, _short(str(failure)),
                                                {}, CALLRESULTERROR))
            return
        self._settle_read(pending, response)

    def _on_error(self, frame: CallErrorFrame) -> None:
        pending, start = self._take_current(frame.unique_id)
        if start is not None:
            self._write_call(start)
        if pending is not None:
            self._settle_read(pending, exc=CallError(frame.code, frame.description, frame.details))

    def _check_request(self, unique_id: str, action: str, payload: Any,
                       answer: bool) -> tuple[Handler, Any] | None:
        """Find the handler and build the request, or answer why not (when answering at all)."""
        try:
            return self._handler_and_request(action, payload)
        except OCPPError as exc:
            log.warning("%s: refused %s %s: %s %s", self.name, action, unique_id, exc.code,
                        exc.description)
            if answer:
                self._send_frame(CallErrorFrame(unique_id, exc.code, _short(exc.description)))
            return None
        except RecursionError:
            # JSON nests up to 1024 deep; the codec's walk of free-form data (DataTransfer's
            # data) runs out of stack before that. The peer's doing, not a bug of ours.
            log.warning("%s: refused %s %s: nested too deep to read", self.name, action, unique_id)
            if answer:
                self._send_frame(CallErrorFrame(unique_id, error_code(FORMAT, self.version),
                                                "nested too deep to read"))
            return None
        except Exception:
            log.exception("%s: could not read %s %s", self.name, action, unique_id)
            if answer:
                self._send_frame(CallErrorFrame(unique_id, "InternalError", "could not read the request"))
            return None

    def _handler_and_request(self, action: str, payload: Any) -> tuple[Handler, Any]:
        if action not in self._module.REQUESTS:
            raise OCPPError(f"{action} is not an OCPP {self.version} action", code="NotSupported")
        if action not in self._incoming:
            raise OCPPError(f"{action} is not sent in this direction", code="NotSupported")
        cls = self._module.REQUESTS[action]
        handler = self._find_handler(cls)
        if handler is None:
            raise OCPPError(f"no handler for {action}", code="NotImplemented")
        return handler, from_payload(cls, payload, lenient=self.lenient)

    def _on_call(self, frame: Call) -> None:
        with self._lock:
            # Checked and claimed in one lock round: this runs for every call the peer makes.
            duplicate = frame.unique_id in self._handling
            self._handling.add(frame.unique_id)
        if duplicate:
            code = "FormationViolation" if self.version == "1.6" else "RpcFrameworkError"
            log.warning("%s: a call reused the id %s of one still being handled",
                        self.name, frame.unique_id)
            self._send_frame(CallErrorFrame(frame.unique_id, code,
                                            "a call with this id is still being handled"))
            return
        found = self._check_request(frame.unique_id, frame.action, frame.payload, answer=True)
        if found is None:
            with self._lock:
                self._handling.discard(frame.unique_id)
            return
        self._take_in((frame.unique_id, frame.action, found[0], found[1], True))

    def _on_send(self, frame: Send) -> None:
        found = self._check_request(frame.unique_id, frame.action, frame.payload, answer=False)
        if found is not None:
            self._take_in((frame.unique_id, frame.action, found[0], found[1], False))

    def _take_in(self, item: tuple[Any, ...]) -> None:
        """Handle the peer's call in this thread, or queue it for a worker.

        A worker that just read it and finds no handler running leaves the
        socket and runs it at once; anything else queues in arrival order.
        """
        me = threading.get_ident()
        with self._lock:
            now = not self._handler_running and not self._work and self._reading_thread == me \
                and me in self._workers
            if now:
                self._handler_running = True
                self._reading_thread = None
                self._handlers_run += 1
                if self._sleeper is not None or self._unread_call_locked():
                    self._wake.notify()
            else:
                self._queue_work_locked(item)
        if now:
            self._run_item(item)
            self._handle_queued()

    def _queue_work_locked(self, item: tuple[Any, ...]) -> None:
        """Queue for the handling role; wake a worker if nobody holds it to run the queue."""
        self._work.append(item)
        if not self._handler_running:
            self._wake.notify()

    def _send_frame(self, frame: Frame) -> None:
        """Write a frame we owe the peer; if the connection is gone there is no one to tell."""
        try:
            text = serialise(frame)
        except (TypeError, ValueError) as exc:
            # Error details come from handlers unchecked; the peer still gets an answer.
            log.error("%s: could not serialise the answer to %s: %s", self.name, frame.unique_id, exc)
            if isinstance(frame, CallErrorFrame):
                frame = CallErrorFrame(frame.unique_id, frame.code, frame.description, {},
                                       frame.message_type)
            else:
                frame = CallErrorFrame(frame.unique_id, "InternalError", "the answer was not JSON")
            text = serialise(frame)
        self._log_frame(">", text)
        try:
            self._transport.send(text)
        except Exception as exc:
            log.debug("%s: could not send %s: %s", self.name, frame.unique_id, exc)

    # -- the peer's calls -----------------------------------------------

    def _handle_queued(self) -> None:
        """Run the queued work in order, holding the handling role; then read again if free."""
        me = threading.get_ident()
        while True:
            with self._lock:
                if not self._work:
                    self._handler_running = False
                    if self._may_read_locked():
                        self._reading_thread = me
                    return
                item = self._work.popleft()
                self._handlers_run += 1
            self._run_item(item)

    def _run_item(self, item: tuple[Any, ...]) -> None:
        if len(item) == 1:
            self._step_out()
            try:
                item[0]()
            except Exception:
                log.exception("%s: a callback failed", self.name)
            return
        unique_id, action, handler, request, answer = item
        if self._closing:
            return  # nobody is left to answer
        if not answer:
            self._step_out()
            try:
                handler(request)
            except Exception:
                log.exception("%s: the %s handler raised", self.name, action)
            if self._history is not None:
                self._history.handled(request)
            return
        try:
            reply = self._run_handler(unique_id, action, handler, request)
        except Exception:  # never let one message end the worker
            log.exception("%s: failed to answer %s", self.name, unique_id)
            reply = CallErrorFrame(unique_id, "InternalError", "the handler failed")
        with self._lock:
            self._handling.discard(unique_id)
        try:
            self._send_frame(reply)
        except Exception:  # never let one message end the worker
            log.exception("%s: failed to answer %s", self.name, unique_id)
        if self._history is not None:
            self._history.handled(request)

    def _step_out(self) -> bool:
        """Leave the turn before user code runs, which may wait; True if this thread held it."""
        return self._turnstile is not None and self._turnstile.leave()

    def _run_handler(self, unique_id: str, action: str, handler: Handler,
                     request: Any) -> Frame:
        turnstile, held = self._turnstile, self._step_out()
        try:
            response = handler(request)
        except OCPPError as exc:
            log.info("%s: the %s handler answered %s: %s", self.name, action, exc.code, exc)
            details = exc.details if isinstance(exc.details, dict) else {}
            return CallErrorFrame(unique_id, wire_code(exc.code, self.version),
                                  _short(exc.description), details)
        except Exception:
            log.exception("%s: the %s handler raised", self.name, action)
            return CallErrorFrame(unique_id, "InternalError", f"the {action} handler failed")
        finally:
            if held and turnstile is not None:
                # Back at the front of the queue: the answer goes out before the messages
                # read since are worked on, as if the handler had not stepped out.
                turnstile.enter(first=True)
        expected = self._module.RESPONSES[action]
        if not isinstance(response, expected):
            log.error("%s: the %s handler returned %r, not a %s", self.name, action,
                      type(response).__name__, expected.__name__)
            return CallErrorFrame(unique_id, "InternalError",
                                  f"the {action} handler returned an invalid response")
        try:
            payload = to_payload(response)
        except ValidationError as exc:
            log.error("%s: the %s handler returned an invalid response: %s", self.name, action, exc)
            return CallErrorFrame(unique_id, "InternalError",
                                  f"the {action} handler returned an invalid response")
        return CallResult(unique_id, payload)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DESCRIPTION else text[:_MAX_DESCRIPTION - 3] + "..."


def call_with_dict(connection: Connection, action: str, payload: Mapping[str, Any],
                   timeout: float | None) -> dict[str, Any] | None:
    """The dict-in, dict-out call, validated both ways through the message classes."""
    module = version_module(connection.version)
    try:
        request_cls = module.REQUESTS[action]
    except KeyError:
        raise ValueError(f"{action!r} is not an OCPP {connection.version} action") from None
    response = connection.send(from_payload(request_cls, dict(payload)), timeout)
    return None if response is None else to_payload(response)
