"""Giving the memory of stations that left back to the operating system.

A station that leaves is freed at once by reference counting, but glibc's malloc
keeps the freed pages in its arenas (one per thread that allocated, up to eight
per core), so a CSMS would keep the RSS of its busiest moment for good
(benchmarks/README.md, bench_churn). So a second after stations leave, the CSMS asks glibc to return
its free pages (``malloc_trim``), at most once a second; and an operator may cap
the number of arenas for the whole process (``CSMS(malloc_arenas=...)``), which
with the trim brings RSS back within a few percent. Elsewhere than glibc both
are no-ops.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable

from ocpp_sync.scheduling.deadlines import TIMER, Deadline, DeadlineTimer

__all__ = ["MemoryReturn", "cap_malloc_arenas", "freeze_start_up_objects", "glibc_trim"]

log = logging.getLogger("ocpp_sync.memory")

#: mallopt's parameter number for the arena cap (glibc's malloc.h).
_M_ARENA_MAX = -8


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt   # noqa: B018 - musl and others lack them
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def glibc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` (ctypes lets go of the GIL while it runs); None elsewhere."""
    return None if _LIBC is None else lambda: _LIBC.malloc_trim(0)


def cap_malloc_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas for the whole process; False where there is no glibc.

    Threads started afterwards share the ``count`` arenas: freed memory then
    gathers in few places, where a trim can return it. CPython allocates under
    the GIL, so fewer arenas cost it next to no speed.
    """
    if count < 1:
        raise ValueError("malloc_arenas must be at least 1")
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, count))


_frozen = False
_freeze_lock = threading.Lock()


def freeze_start_up_objects() -> bool:
    """Once per process: collect, then put every object alive out of the collector's reach.

    The modules, message classes and converters loaded at start are most of what a
    full collection walks (tens of thousands of objects, tens of milliseconds with
    the GIL held), and a CSMS parsing big messages runs many full collections: each
    is a pause for every station. Frozen, they are walked no more. What is frozen
    is never collected even if it becomes garbage later, so it is done once, on the
    heap of the first start: bounded by it. False if this process did it before.
    """
    global _frozen
    with _freeze_lock:
        if _frozen:
            return False
        _frozen = True
    gc.collect()
    gc.freeze()
    log.debug("froze %d start-up objects out of the garbage collector's walks", gc.get_freeze_count())
    return True


class MemoryReturn:
    """Trims the allocator ``delay`` seconds after a station left; one trim per burst of leavers.

    Args:
        trim: The call that returns free memory; None (no glibc) makes this a no-op.
        delay: Seconds between the first departure of a burst and the trim.
        timer: Where the trim is scheduled; its thread runs it.
    """

    def __init__(self, trim: Callable[[], object] | None, delay: float = 1.0,
                 timer: DeadlineTimer = TIMER) -> None:
        self._trim = trim
        self._delay = delay
        self._timer = timer
        self._lock = threading.Lock()   # guards _pending
        self._pending: Deadline | None = None
        self._stopped = False

    def station_left(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            if self._pending is None and not self._stopped:
                self._pending = self._timer.schedule(time.monotonic() + self._delay, self._run)

    def stop(self) -> None:
        """Forget a trim not yet run and schedule none again: no timer thread outlives the CSMS."""
        with self._lock:
            self._stopped = True
            pending, self._pending = self._pending, None
        if pending is not None:
            self._timer.cancel(pending)
            self._timer.stop_if_idle()

    def _run(self) -> None:
        with self._lock:
            if self._pending is None:
                return
            self._pending = None
        started = time.perf_counter()
        self._trim()   # type: ignore[misc]
        log.debug("returned free memory to the system in %.1f ms", (time.perf_counter() - started) * 1e3)
