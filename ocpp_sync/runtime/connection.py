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

The protocol's rules (the FIFO of our calls, ids, codes, answers) are
``ocpp_sync.protocol.rpc``'s; this module only moves text and threads. The
reader never wakes up on a timer: a blocking send() times its own call out,
and the shared timer of ``scheduling.deadlines`` times out send_async() calls.

A blocking send() that finds nobody reading reads the socket itself until
its answer comes (queueing the peer's calls for the workers), so a sequential
caller gets its answer without a hand-off between threads either. A worker
steps back after handing an answer to a blocking caller and takes the socket
again once no such caller has read for ``_LAZY_READER`` seconds, or at once
when someone needs it (an async call in flight, a caller waiting behind
another, the end of the stream).

On a server, the connections take turns (``scheduling.turnstile``): a thread that has
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
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ocpp_sync.errors import CallTimeout, ConnectionClosed
from ocpp_sync.metrics import CLOSED, OUT, SEND, TIMEOUT
from ocpp_sync.protocol.codec import to_payload
from ocpp_sync.protocol.registration import Registration
from ocpp_sync.protocol.rpc import CS, CSMS, CallAnswered, FrameRefused, Handler, OutgoingCall, PeerCall, RpcState
from ocpp_sync.runtime.handling import Handling
from ocpp_sync.runtime.history import History
from ocpp_sync.runtime.metrics import ConnectionMetrics, clock
from ocpp_sync.runtime.work import _Pending, _settle, _Task, _Work, call_with_dict
from ocpp_sync.scheduling.deadlines import TIMER
from ocpp_sync.scheduling.turnstile import Turnstile
from ocpp_sync.security import redact_secrets
from ocpp_sync.websocket.base import Transport

__all__ = ["Connection", "CS", "CSMS", "call_with_dict"]

log = logging.getLogger("ocpp_sync.connection")

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
# Characters from which a message is parsed outside the turnstile (see _read_and_handle):
# far above what OCPP usually sends, and about a millisecond or two of parsing.
_BIG_MESSAGE = 32 * 1024


class Connection(Handling):
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

    ``find_after(request_cls)`` returns the hook to run with (request, response) once
    our answer to such a request is written, or None. ``registration`` (a CSMS's)
    is the station's registration, which the RPC core consults for every call.
    ``metrics`` counts its calls (see ``runtime.metrics``); None: counts of its own.
    """

    def __init__(self, transport: Transport, *, name: str, version: str, role: str,
                 find_handler: Callable[[type], Handler | None], timeout: float = 30.0,
                 lenient: bool = False, on_close: Callable[[], None] | None = None,
                 history: History | None = None, max_bad_messages: int | None = None,
                 on_bad_messages: Callable[[int], None] | None = None,
                 turnstile: Turnstile | None = None,
                 find_after: Callable[[type], Callable[[Any, Any], Any] | None] | None = None,
                 registration: Registration | None = None,
                 metrics: ConnectionMetrics | None = None) -> None:
        self.name = name
        self._metrics = metrics if metrics is not None else ConnectionMetrics(version)
        self.version = version
        self.timeout = timeout
        self.lenient = lenient
        self._transport = transport
        self._on_close = on_close
        self._history = history
        self._on_bad_messages = on_bad_messages
        self._turnstile = turnstile
        self._find_after = find_after
        # _lock guards the protocol state (the RpcState holds it around its own fields), the
        # reading role (_reading_thread, _waiting_callers, _lazy_until, _stream_ended) and the
        # handling role (_work, _handler_running, _handlers_run, _sleeper, _watcher, _ended, _workers).
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when no call is queued or on the wire
        self._wake = threading.Condition(self._lock)  # workers wait here for a role
        self._rpc = RpcState(version, role, find_handler, name=name, lenient=lenient,
                             max_bad_messages=max_bad_messages, guard=self._lock,
                             on_current=self._on_current_locked, on_idle=self._on_idle_locked,
                             registration=registration)
        self._reading_thread: int | None = None   # the thread reading the socket now, if any
        self._waiting_callers = 0                 # blocking callers waiting for another to read
        self._lazy_until = 0.0                    # workers leave the socket to callers until then
        self._stream_ended = False                # a caller saw the end: only workers read now
        self._work: collections.deque[_Work] = collections.deque()  # for the handling role
        self._handler_running = False             # a worker holds the handling role
        self._handling_thread: int | None = None  # ... this one
        self._handlers_run = 0                    # tells a watching worker whether handlers run
        self._sleeper: int | None = None          # the worker waiting without a timeout
        self._watcher: int | None = None          # the worker looking again soon for a caller
        self._ended = False                       # the end was dealt with: workers leave
        self._workers: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._finished = threading.Event()

    def _on_current_locked(self, call: OutgoingCall) -> None:
        """A call went on the wire: wake a worker if no caller of its own will read its answer."""
        if self._reading_thread is None and self._unread_call_locked():
            self._wake.notify()

    def _on_idle_locked(self) -> None:
        self._idle.notify_all()
        if self._rpc.closing:
            self._wake.notify_all()

    @property
    def remote_address(self) -> str:
        return getattr(self._transport, "remote_address", "")

    @property
    def peer_close_code(self) -> int | None:
        """The code of the peer's close frame, once one came."""
        return getattr(self._transport, "peer_close_code", None)

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
            self._join(other, time.monotonic() + _JOIN_TIMEOUT)
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
            self._queue_work_locked(_Task(task))

    def close(self, code: int = 1000, reason: str = "", *, drain: float = 0.0,
              timeout: float = _JOIN_TIMEOUT) -> None:
        """Close the websocket, fail every pending call, stop both threads. Idempotent.

        ``drain`` seconds at most are given to calls already queued or on the wire
        to be answered first, so a clean shutdown does not lose an answer in flight;
        ``timeout`` more bound the close handshake and the threads' ends. A worker
        still inside a handler is not waited for: its answer has nowhere to go.
        """
        # The thread reading now (a done-callback closing, say) sees the end itself once
        # this returns: waiting for it here would wait for ourselves.
        reading = threading.get_ident() == self._reading_thread
        if drain > 0 and not reading:
            with self._idle:
                self._idle.wait_for(
                    lambda: not self._rpc.has_calls_locked() or self._finished.is_set(), drain)
        self._fail_all(ConnectionClosed("the connection was closed"))
        TIMER.stop_if_idle()
        try:
            self._transport.close(code, reason)
        except Exception:  # the transport may already be gone; we are closing anyway
            log.debug("%s: error closing the transport", self.name, exc_info=True)
        if reading:
            return
        deadline = time.monotonic() + timeout
        if not self._finished.wait(timeout):
            log.warning("%s: the connection did not end within %g s", self.name, timeout)
        for thread in self._threads:
            self._join(thread, deadline)

    def _join(self, thread: threading.Thread, deadline: float) -> None:
        if thread is threading.current_thread() or thread.ident is None:
            return
        if thread.ident == self._handling_thread and self._finished.is_set():
            if thread.is_alive():
                log.info("%s: the %s handler is still running; the connection is closed, so its "
                         "answer will be dropped", self.name, self._handling_action)
            return   # a daemon thread in user code: it ends when the handler returns
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("%s: %s did not stop in time", self.name, thread.name)

    def _log_frame(self, direction: str, text: str) -> None:
        if self._history is not None:
            self._history.frame(direction, text)
        # Frames can carry station passwords (AuthorizationKey, BasicAuthPassword): never log those.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s", self.name, direction, redact_secrets(text))

    # -- our calls ----------------------------------------------------------

    def send(self, message: Any, timeout: float | None = None) -> Any:
        """Send a request and block for its response (None for a 2.1 SEND)."""
        action = self._rpc.outgoing_action(message)
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
        try:
            self._wait_answer(me, future, pending)
        except BaseException:
            # Ctrl-C (or a caller's own exception) while waiting: nobody wants this answer now,
            # so a close() that drains calls in flight must not wait for it.
            if not pending.settled:
                self._expire(pending, "given up by its caller")
            raise
        return future.result(timeout=0)

    def _wait_answer(self, me: int, future: Future[Any], pending: _Pending) -> None:
        """Until ``pending`` is settled: read the socket for it, or wait for the reader to."""
        while not pending.settled:
            remaining = pending.deadline - time.monotonic()
            if remaining <= 0:
                self._expire(pending)
                break
            with self._lock:
                read = self._reading_thread is None and not (self._rpc.closing or self._stream_ended)
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
                if ended or self._rpc.closing or self._unread_call_locked():
                    self._wake.notify()

    def send_async(self, message: Any, timeout: float | None = None) -> Future[Any]:
        """Queue a request; the future gets the response or the error.

        Done-callbacks run in the thread that read the answer (a worker, or a
        thread blocked in send()), or the timer thread for a timeout: keep them short.
        """
        future, pending = self._submit(self._rpc.outgoing_action(message), to_payload(message), timeout,
                                       blocking=False)
        if pending is not None:
            deadline = TIMER.schedule(pending.deadline, lambda: self._expire(pending))
            future.add_done_callback(lambda _: TIMER.cancel(deadline))
        return future

    def _submit(self, action: str, payload: dict[str, Any], timeout: float | None,
                blocking: bool) -> tuple[Future[Any], _Pending | None]:
        unique_id, text, response_cls = self._rpc.frame_call(action, payload)
        if response_cls is None:  # a 2.1 SEND: written at once, never answered
            self._rpc.check_open()
            self._log_frame(">", text)
            self._transport.send(text)
            self._metrics.other(OUT, action, SEND)
            done: Future[Any] = Future()
            done.set_result(None)
            return done, None
        pending = _Pending(unique_id, action, text, response_cls,
                           self.timeout if timeout is None else timeout, blocking)
        start = self._rpc.submit(pending)
        if start is not None:
            self._write_call(start)
        return pending.future, pending

    def _write_call(self, call: OutgoingCall) -> None:
        assert isinstance(call, _Pending)
        call.sent = clock()
        self._log_frame(">", call.text)
        try:
            self._transport.send(call.text)
        except Exception as exc:
            log.debug("%s: writing a call failed: %s", self.name, exc)
            self._step_out()   # failing the calls runs their done-callbacks; closing waits
            self._fail_all(ConnectionClosed(f"the connection is gone: {exc}"))
            self._close_transport()

    def _expire(self, pending: _Pending, why: str = "") -> None:
        start = self._rpc.expire(pending)
        if _settle(pending, exc=CallTimeout(why or f"no answer to {pending.action} within {pending.timeout:g} s")):
            self._metrics.other(OUT, pending.action, TIMEOUT)
        if start is not None:
            self._write_call(start)

    def _settle_read(self, call: OutgoingCall, result: Any = None,
                     exc: BaseException | None = None) -> None:
        """Settle a call whose answer this thread read. A worker then leaves the socket to
        the blocking caller, which reads its own next answer; only now, not before: a
        caller that took the socket sooner would read for an answer already in."""
        assert isinstance(call, _Pending)
        self._step_out()   # a future's done-callbacks run here
        if _settle(call, result, exc):
            self._metrics.answer_out(call.action, exc, call.sent)
        me = threading.get_ident()
        # Unlocked first look: only this thread moves the role away from itself, and the
        # usual reader here is the caller itself, which keeps the socket.
        if not call.blocking or self._reading_thread != me or me not in self._workers:
            return
        with self._lock:
            if self._reading_thread == me and self._rpc.current is None and not self._rpc.closing:
                self._reading_thread = None
                self._lazy_until = time.monotonic() + _LAZY_READER

    def _fail_all(self, exc: ConnectionClosed) -> None:
        for call in self._rpc.fail_all():
            assert isinstance(call, _Pending)
            if _settle(call, exc=exc):
                self._metrics.other(OUT, call.action, CLOSED)

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
                    self._handling_thread = me
                    return _HANDLE
                if self._ended:
                    return None
                holder = self._reading_thread
                if self._may_read_locked():
                    self._reading_thread = me
                    return _READ
                wait: float | None = None
                if holder in self._workers:
                    if self._rpc.closing:
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
            time.monotonic() >= self._lazy_until or self._rpc.closing or self._stream_ended
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
        self._metrics.close()
        log.debug("%s: connection ended", self.name)
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            try:
                on_close()
            except Exception:
                log.exception("%s: the on-close callback failed", self.name)
        # The callables we were given point back at their owners (a CSMS's Station holds
        # this connection), and the protocol state points at our methods: cycles, which
        # only the cyclic GC would free, and payload dicts never trigger it. Cut them.
        self._on_bad_messages = None
        self._find_after = None
        self._rpc.detach()

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
        # A big message is parsed outside the turn: its parse (tens of milliseconds at the
        # size limit, with the GIL held for the JSON part) would hold every other station's
        # turn, where outside it the others go on taking theirs between its GIL releases.
        turnstile = self._turnstile if len(text) < _BIG_MESSAGE else None
        if turnstile is not None:
            turnstile.enter()
        try:
            if type(text) is str:
                self._on_text(text)
            else:
                self._log_frame("<", f"<binary message of {len(text)} bytes>")
                self._on_refused(self._rpc.bad_message(
                    f"a binary message of {len(text)} bytes (OCPP-J is text only)"))
        except Exception:
            log.exception("%s: failed to process a message", self.name)
        finally:
            if turnstile is not None:
                turnstile.leave()
        return True

    def _unread_call_locked(self) -> bool:
        """A call is on the wire and no caller of its own will read its answer."""
        current = self._rpc.current
        return current is not None and (not current.blocking or self._waiting_callers > 0)  # type: ignore[attr-defined]

    def _close_transport(self, code: int = 1000, reason: str = "") -> None:
        try:
            self._transport.close(code, reason)
        except Exception:
            log.debug("%s: error closing the transport", self.name, exc_info=True)

    def _on_text(self, text: str) -> None:
        received = clock()
        self._log_frame("<", text)
        event = self._rpc.receive(text)
        if isinstance(event, CallAnswered):
            if event.write_next is not None:
                self._write_call(event.write_next)
            if event.reply is not None:
                self._write_answer(event.reply)
            self._settle_read(event.call, event.response, event.error)
        elif isinstance(event, PeerCall):
            event.size = len(text)   # what the history counts the request as
            event.received = received
            self._take_in(event)
        elif isinstance(event, FrameRefused):
            self._on_refused(event, received)

    def _on_refused(self, event: FrameRefused, received: float = 0.0) -> None:
        if event.write_next is not None:
            self._write_call(event.write_next)
        if event.failed is not None:
            self._settle_read(event.failed, exc=event.error)
        if event.reply is not None:
            self._write_answer(event.reply)
            if event.action is not None:
                self._metrics.refused_in(event.action, event.reply, received)
        if event.malformed:
            self._metrics.bad_message()
        if event.close is None:
            return
        self._step_out()   # a callback runs, and closing waits for the peer
        on_bad_messages = self._on_bad_messages   # None once the connection has ended
        if on_bad_messages is not None and event.reason == "too many malformed messages":
            try:
                on_bad_messages(self._rpc.bad_frames)
            except Exception:
                log.exception("%s: the bad-messages callback failed", self.name)
        self._close_transport(event.close, event.reason)

    def _write_answer(self, text: str) -> None:
        """Write text we owe the peer; if the connection is gone there is no one to tell."""
        self._log_frame(">", text)
        try:
            self._transport.send(text)
        except Exception as exc:
            log.debug("%s: could not send an answer: %s", self.name, exc)
