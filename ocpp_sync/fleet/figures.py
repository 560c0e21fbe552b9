"""What a fleet run counts, in bounded memory: counters and latency histograms that merge.

A worker records into :class:`Figures` and hands the parent what changed since
the last hand-over (:meth:`Figures.take`); the parent adds those up
(:meth:`Figures.add`). Latencies go into log-spaced buckets, so a run of any
length keeps a few hundred integers per action, never a list of every call.
"""
from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

__all__ = ["Histogram", "Figures", "PERCENTILES"]

#: Bucket ``n`` holds latencies up to ``FLOOR * GROWTH ** n`` seconds (about 4 % wide).
FLOOR = 1e-5
GROWTH = 1.04
PERCENTILES = (50.0, 95.0, 99.0)


class Histogram:
    """Latencies in log-spaced buckets; a percentile is read to within a bucket's width."""

    def __init__(self, buckets: dict[int, int] | None = None) -> None:
        """``buckets``: bucket number -> count, as :meth:`to_dict` gave them."""
        self.buckets: Counter[int] = Counter(buckets or {})

    @property
    def count(self) -> int:
        return sum(self.buckets.values())

    def record(self, seconds: float) -> None:
        bucket = 0 if seconds <= FLOOR else math.ceil(math.log(seconds / FLOOR, GROWTH))
        self.buckets[bucket] += 1

    def add(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)

    def percentile(self, percent: float) -> float | None:
        """The upper edge of the bucket the ``percent``-th latency falls in; None when empty."""
        total = self.count
        if not total:
            return None
        rank = math.ceil(total * percent / 100)
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return float(FLOOR * GROWTH ** bucket)
        raise AssertionError("unreachable: the ranks add up to the total")

    def to_dict(self) -> dict[int, int]:
        return dict(self.buckets)


class Figures:
    """The counts of one worker (or, added up, of the fleet); thread-safe.

    ``calls`` counts requests sent by action, ``answered`` those that got a
    CALLRESULT, ``errors`` failures by code (a CALLERROR's code, or the name of
    the exception: CallTimeout, ConnectionClosed...); ``events`` counts
    station-level things: connected, refused, connect_failed, booted,
    disconnects, reconnects, queued (a transaction message kept while offline),
    scenarios_passed, scenarios_failed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.calls: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.errors_by_action: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.latency: dict[str, Histogram] = {}

    def sent(self, action: str) -> None:
        with self._lock:
            self.calls[action] += 1

    def answer(self, action: str, seconds: float) -> None:
        """A CALLRESULT ``seconds`` after the call."""
        with self._lock:
            self.answered[action] += 1
            self.latency.setdefault(action, Histogram()).record(seconds)

    def error(self, action: str | None, code: str, seconds: float | None = None) -> None:
        """A failed call of ``action`` (None: a failed connect); ``seconds`` when an answer
        (a CALLERROR) came back after that long."""
        with self._lock:
            self.errors[code] += 1
            if action is None:
                return
            self.errors_by_action[action] += 1
            if seconds is not None:
                self.latency.setdefault(action, Histogram()).record(seconds)

    def event(self, name: str, count: int = 1) -> None:
        with self._lock:
            self.events[name] += count

    def take(self) -> dict[str, Any]:
        """What was counted since the last take, as plain data for a queue; resets the counts."""
        with self._lock:
            taken = {"calls": dict(self.calls), "answered": dict(self.answered),
                     "errors": dict(self.errors), "errors_by_action": dict(self.errors_by_action),
                     "events": dict(self.events),
                     "latency": {action: h.to_dict() for action, h in self.latency.items()}}
            self._clear()
        return taken

    def add(self, taken: dict[str, Any]) -> None:
        """Add what another :class:`Figures` handed over with :meth:`take`."""
        with self._lock:
            self.calls.update(taken["calls"])
            self.answered.update(taken["answered"])
            self.errors.update(taken["errors"])
            self.errors_by_action.update(taken["errors_by_action"])
            self.events.update(taken["events"])
            for action, buckets in taken["latency"].items():
                self.latency.setdefault(action, Histogram()).add(Histogram(buckets))

    def total_latency(self) -> Histogram:
        """Every action's latencies in one histogram."""
        merged = Histogram()
        with self._lock:
            for histogram in self.latency.values():
                merged.add(histogram)
        return merged
