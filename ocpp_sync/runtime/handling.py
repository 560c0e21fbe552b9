"""The handling role of a connection: the peer's calls run one at a time, in arrival order.

A worker that reads a peer's call and finds no handler running leaves the
socket and runs it itself (leader/follower); anything else queues behind it.
User code always runs outside the server's turn. An after-answer hook runs in
the same role once the answer is written, before the next call is handled: a
call it makes reaches the peer after the answer, never before.
"""
from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.rpc import PeerCall, RpcState
from ocpp_sync.runtime.metrics import ConnectionMetrics
from ocpp_sync.runtime.work import _Task, _Work

if TYPE_CHECKING:
    from ocpp_sync.runtime.history import History
    from ocpp_sync.scheduling.turnstile import Turnstile

log = logging.getLogger("ocpp_sync.connection")


class Handling:
    """The handling role's half of ``Connection``; the fields are the connection's, under its lock."""

    name: str
    _lock: threading.Lock
    _wake: threading.Condition
    _rpc: RpcState
    _work: collections.deque[_Work]
    _handler_running: bool
    _handling_thread: int | None
    _handling_action = ""   # the action of the call being handled, for a close that cannot wait for it
    _handlers_run: int
    _reading_thread: int | None
    _sleeper: int | None
    _workers: set[int]
    _history: History | None
    _turnstile: Turnstile | None
    _find_after: Callable[[type], Callable[[Any, Any], Any] | None] | None
    _metrics: ConnectionMetrics

    def _unread_call_locked(self) -> bool:
        raise NotImplementedError

    def _may_read_locked(self) -> bool:
        raise NotImplementedError

    def _write_answer(self, text: str) -> None:
        raise NotImplementedError

    def _take_in(self, call: PeerCall) -> None:
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
                self._handling_thread = me
                self._reading_thread = None
                self._handlers_run += 1
                if self._sleeper is not None or self._unread_call_locked():
                    self._wake.notify()
            else:
                self._queue_work_locked(call)
        if now:
            self._run_item(call)
            self._handle_queued()

    def _queue_work_locked(self, item: _Work) -> None:
        """Queue for the handling role; wake a worker if nobody holds it to run the queue."""
        self._work.append(item)
        if not self._handler_running:
            self._wake.notify()

    def _handle_queued(self) -> None:
        """Run the queued work in order, holding the handling role; then read again if free."""
        me = threading.get_ident()
        while True:
            with self._lock:
                if not self._work:
                    self._handler_running = False
                    self._handling_thread = None
                    if self._may_read_locked():
                        self._reading_thread = me
                    return
                item = self._work.popleft()
                self._handlers_run += 1
            self._run_item(item)

    def _run_item(self, item: _Work) -> None:
        if isinstance(item, _Task):
            self._handling_action = "on-connect"
            self._step_out()
            try:
                item.run()
            except Exception:
                log.exception("%s: a callback failed", self.name)
            return
        self._handling_action = item.action
        if self._rpc.closing:
            self._rpc.release(item)
            return  # nobody is left to answer
        if not item.answer:
            self._step_out()
            try:
                item.handler(item.request)
            except Exception:
                log.exception("%s: the %s handler raised", self.name, item.action)
            self._metrics.handled_send(item.action)
        else:
            response = None
            try:
                text, response = self._run_handler(item)
                self._write_answer(text)
                self._metrics.answered_in(item.action, text, item.received)
            except Exception:  # never let one message end the worker
                log.exception("%s: failed to answer %s", self.name, item.unique_id)
            find_after = self._find_after   # None once the connection is over
            if response is not None and find_after is not None:
                self._run_after(find_after(type(item.request)), item, response)
        if self._history is not None:
            self._history.handled(item.request, item.size)

    def _run_after(self, after: Callable[[Any, Any], Any] | None, call: PeerCall, response: Any) -> None:
        """The after-answer hook of ``call``'s request, its answer on the wire already."""
        if after is None:
            return
        self._step_out()
        try:
            after(call.request, response)
        except Exception:
            log.exception("%s: the after-answer hook for %s failed", self.name, call.action)

    def _step_out(self) -> bool:
        """Leave the turn before user code runs, which may wait; True if this thread held it."""
        return self._turnstile is not None and self._turnstile.leave()

    def _run_handler(self, call: PeerCall) -> tuple[str, Any]:
        """Run the handler of the peer's ``call`` outside the turn; the text that answers it,
        and the response (None if the answer is a CALLERROR)."""
        turnstile, held = self._turnstile, self._step_out()
        try:
            response = call.handler(call.request)
        except Exception as exc:
            if isinstance(exc, OCPPError):
                log.info("%s: the %s handler answered %s: %s", self.name, call.action, exc.code, exc)
            else:
                log.exception("%s: the %s handler raised", self.name, call.action)
            return self._rpc.answer_error(call, exc), None
        finally:
            if held and turnstile is not None:
                # Back at the front of the queue: the answer goes out before the messages
                # read since are worked on, as if the handler had not stepped out.
                turnstile.enter(first=True)
        text = self._rpc.answer(call, response)
        return text, (response if self._rpc.is_result(text) else None)
