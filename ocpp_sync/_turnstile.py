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
holder that is stuck anyway (a blocking logging handler, say) cannot stall
the others for long: once a turn has been held ``PATIENCE`` seconds, the next
waiter takes it over.
"""
from __future__ import annotations

import collections
import threading
import time

__all__ = ["Turnstile", "PATIENCE"]

# How long a turn may be held before a waiter takes it over. Holds last tens of
# microseconds (a few milliseconds when the GIL is busy); waiting behind many of them
# can take longer, and never triggers this, since it is the hold that is timed.
PATIENCE = 0.05


class Turnstile:
    """One turn, handed to waiting threads first come, first served.

    ``_guard`` protects the holder, the time the turn was taken and the queue.
    Each waiter blocks on a lock of its own, which the thread that hands over the
    turn releases: the hand-over wakes exactly the next thread.
    """

    def __init__(self, patience: float | None = None) -> None:
        self._patience = PATIENCE if patience is None else patience
        self._guard = threading.Lock()
        self._holder: int | None = None
        self._taken_at = 0.0
        self._waiters: collections.deque[tuple[int, threading.Lock]] = collections.deque()

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
            ticket = (me, threading.Lock())
            ticket[1].acquire()
            if first:
                self._waiters.appendleft(ticket)
            else:
                self._waiters.append(ticket)
        wait = self._patience
        while not ticket[1].acquire(timeout=wait):
            with self._guard:
                if ticket not in self._waiters:
                    # Handed over just as the wait ran out: the lock is released or about to be.
                    continue
                held_for = time.monotonic() - self._taken_at
                if held_for >= self._patience:
                    self._waiters.remove(ticket)
                    self._holder, self._taken_at = me, time.monotonic()
                    return
                wait = self._patience - held_for

    def leave(self) -> None:
        """Hand the turn to the next waiter; nothing if the calling thread does not hold it."""
        with self._guard:
            if self._holder != threading.get_ident():
                return
            if self._waiters:
                self._holder, lock = self._waiters.popleft()
                self._taken_at = time.monotonic()
                lock.release()
            else:
                self._holder = None
