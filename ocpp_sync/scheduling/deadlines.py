"""One thread that times out the asynchronous calls of every connection.

A blocking ``send()`` expires its own call, but a ``send_async()`` call has no
thread waiting on it. A reader could watch the clock by waking up every so
often, but at thousands of idle connections those wake-ups cost more than the
traffic itself, so readers block until a message arrives and the deadlines
live here, in one heap. The thread runs only while some call has a deadline
(plus a short linger, so a burst of calls does not start one thread each).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Deadline", "DeadlineTimer", "TIMER"]

log = logging.getLogger("ocpp_sync.connection")

_LINGER = 1.0
_JOIN_TIMEOUT = 5.0


class Deadline:
    """A scheduled callback; ``cancel()`` it once the call is settled some other way."""

    __slots__ = ("when", "seq", "callback")

    def __init__(self, when: float, seq: int, callback: Callable[[], None]) -> None:
        self.when = when
        self.seq = seq
        self.callback: Callable[[], None] | None = callback

    def __lt__(self, other: Deadline) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class DeadlineTimer:
    """A heap of deadlines served by one named daemon thread that exists only while needed.

    Callbacks run in the timer thread, one at a time: they must not block for long.
    """

    def __init__(self, name: str = "ocpp_sync-deadlines", linger: float = _LINGER) -> None:
        self._name = name
        self._linger = linger
        self._lock = threading.Lock()  # guards everything below
        self._changed = threading.Condition(self._lock)
        self._heap: list[Deadline] = []
        self._live = 0
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, callback: Callable[[], None]) -> Deadline:
        """Run ``callback`` at ``when`` (a ``time.monotonic()`` instant) unless cancelled first."""
        deadline = Deadline(when, next(self._seq), callback)
        with self._lock:
            heapq.heappush(self._heap, deadline)
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0] is deadline:
                self._changed.notify()
        return deadline

    def cancel(self, deadline: Deadline) -> None:
        """Forget a deadline; harmless if it already fired or was cancelled."""
        with self._lock:
            if deadline.callback is None:
                return
            deadline.callback = None
            self._live -= 1
            if self._live == 0:
                self._heap.clear()
                self._changed.notify()

    def stop_if_idle(self) -> None:
        """End the thread now if no deadline is left, and wait for it (bounded).

        Closing the last connection calls this, so no timer thread outlives it.
        """
        with self._lock:
            thread = self._thread
            if thread is None or self._live:
                return
            self._thread = None
            self._changed.notify()
        if thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("the deadline timer did not stop within %.0f s", _JOIN_TIMEOUT)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                callback = self._next_due_locked(me)
                if callback is None:
                    return
            try:
                callback()
            except Exception:
                log.exception("a deadline callback failed")

    def _next_due_locked(self, me: threading.Thread) -> Callable[[], None] | None:
        """Wait for the first deadline to come due and detach it; None when the thread should end."""
        while self._thread is me:
            if not self._heap:
                if not self._changed.wait(self._linger) and not self._heap and self._thread is me:
                    self._thread = None
                    return None
                continue
            first = self._heap[0]
            if first.callback is None:
                heapq.heappop(self._heap)
                continue
            wait = first.when - time.monotonic()
            if wait > 0:
                self._changed.wait(wait)
                continue
            heapq.heappop(self._heap)
            callback, first.callback = first.callback, None
            self._live -= 1
            return callback
        return None


TIMER = DeadlineTimer()
