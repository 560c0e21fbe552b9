"""Serves the connections of one CSMS in the order their messages arrived.

Every connection has its own threads, and under load they all want the GIL
at once. CPython hands the GIL to no one in particular, so a thread that has
read a message can wait behind many that read theirs later: measured at 200
busy stations, a call waited 10 ms at the median and 98 ms at p99 between
reaching the CSMS's socket and being served. A turnstile puts the threads in
a queue instead: a worker that has read a message takes a turn, in arrival
order, and keeps it while the library works on that message; the others wait
on their own lock, off the GIL. The waits are then as long as the load makes
them, but they are the same for everyone, and the tail shrinks to near the
median.

A turn is held only while library code runs that does not wait: a holder
steps out before running user code (handlers, callbacks) and before waiting
on anything (a peer that does not read), and comes back to the front of the
queue after a handler. The turn orders threads; it protects no data. So a
holder that is slow anyway (a huge message, a logging handler that blocks)
cannot stall the others for long: while threads wait, the shared deadline
timer looks at the turn every ``PATIENCE`` seconds and hands a turn held that
long to the next in line.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from ocpp_sync.scheduling.deadlines import TIMER, Deadline

__all__ = ["Turnstile", "PATIENCE"]

log = logging.getLogger("ocpp_sync.connection")

# How long a turn may be held while others wait. Holds last tens of microseconds (a few
# milliseconds when the GIL is busy); waiting behind many of them can take longer, and
# never triggers this, since it is the hold that is timed, not the wait.
PATIENCE = 0.05


class _Ticket:
    """A waiting thread; its lock is released when the turn is handed to it."""

    __slots__ = ("ident", "lock")

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.lock = threading.Lock()
        self.lock.acquire()


class Turnstile:
    """One turn, handed to waiting threads first come, first served.

    ``_guard`` protects the holder, the time it took the turn, the queue and the
    watch. Each waiter blocks on a lock of its own, which the thread handing over
    the turn releases: a hand-over wakes exactly the next thread, and nobody else.
    """

    def __init__(self, patience: float | None = None) -> None:
        self._patience = PATIENCE if patience is None else patience
        self._guard = threading.Lock()
        self._holder: int | None = None
        self._taken_at = 0.0
        self._waiters: collections.deque[_Ticket] = collections.deque()
        self._watch: Deadline | None = None   # the timer's next look, while anyone waits
        self._closed = False

    @property
    def waiting(self) -> int:
        """How many threads wait for the turn now (for tests and diagnostics)."""
        return len(self._waiters)

    def holds(self) -> bool:
        """Whether the calling thread holds the turn."""
        return self._holder == threading.get_ident()

    def enter(self, *, first: bool = False) -> None:
        """Wait for the turn; ``first`` queues ahead of everyone (a holder coming back)."""
        me = threading.get_ident()
        with self._guard:
            if self._holder is None:
                self._holder, self._taken_at = me, time.monotonic()
                return
            if self._holder == me:
                return
            ticket = _Ticket(me)
            if first:
                self._waiters.appendleft(ticket)
            else:
                self._waiters.append(ticket)
            if self._watch is None and not self._closed:
                self._watch = TIMER.schedule(self._taken_at + self._patience, self._look)
        ticket.lock.acquire()

    def leave(self) -> bool:
        """Hand the turn to the next waiter; False (and nothing done) if the calling thread
        does not hold it."""
        with self._guard:
            if self._holder != threading.get_ident():
                return False
            self._hand_over_locked()
            return True

    def close(self) -> None:
        """Stop watching (the server is stopping), so the timer thread can end."""
        with self._guard:
            self._closed = True
            watch, self._watch = self._watch, None
        if watch is not None:
            TIMER.cancel(watch)
            TIMER.stop_if_idle()

    def _hand_over_locked(self) -> None:
        if self._waiters:
            ticket = self._waiters.popleft()
            self._holder, self._taken_at = ticket.ident, time.monotonic()
            ticket.lock.release()
        else:
            self._holder = None

    def _look(self) -> None:
        """In the timer thread: pass on a turn held ``PATIENCE`` seconds while others wait."""
        with self._guard:
            self._watch = None
            if not self._waiters or self._closed:
                return
            held_for = time.monotonic() - self._taken_at
            if held_for >= self._patience:
                self._hand_over_locked()
            if self._waiters:
                self._watch = TIMER.schedule(self._taken_at + self._patience, self._look)
        if held_for >= self._patience:
            # Under a heavy load the GIL alone can make a hold this long: not worth a warning.
            log.debug("a connection held the server's turn for %.0f ms; the next one goes on",
                      held_for * 1000)
