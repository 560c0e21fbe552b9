"""Counters of calls, results and latencies, cheap enough to update for every message.

Why no lock per message: a connection's figures live in three tallies, each
written by one role of the connection at a time. The reading role (one
thread at a time reads the socket) counts the answers to our calls, the
peer's calls refused as they are read, and the malformed frames; the
handling role (one thread at a time runs the peer's calls) counts the
answers it writes. A hand-off of either role goes through the connection's
lock, so a tally never has two writers at once, and a plain increment
needs no lock of its own. The rare outcomes decided by other threads (a
timeout, a connection gone under a call, a 2.1 SEND written by the caller)
go to a third tally under a small lock: one round per such event, never
per message.

Readers copy the tallies at any time: a dict or list copy is one C call,
which no other thread interleaves with (the GIL; on a free-threaded build,
the object's own lock), so a snapshot never sees a torn dict, only figures
a message or two behind (an entry's count may be one ahead of its buckets).
When a connection ends its tallies are folded into the owner's totals
(:class:`MetricsTotals`); an answer a handler still writes after that is
not counted. The snapshot types and the labels are ``ocpp_sync.metrics``'s.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

import orjson

from ocpp_sync.errors import INTERNAL, CallError, error_code, normalise_code, wire_code
from ocpp_sync.metrics import (
    ANSWERED,
    BUCKETS,
    IN,
    INVALID,
    OTHER,
    OUT,
    SEND,
    UNKNOWN,
    CallFigures,
    CallKey,
    Histogram,
    LatencyKey,
)
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.security import Reason, SecurityEvent, SecurityEventHook

__all__ = ["ConnectionMetrics", "MetricsTotals", "clock"]

#: The clock of every latency: fine-grained and monotonic.
clock = time.perf_counter

# Security events about an open connection, not a handshake.
_CLOSES = frozenset({Reason.MESSAGE_TOO_LARGE, Reason.BAD_MESSAGES})


class _Entry:
    """One (direction, action, result): how many, and the buckets of those that were timed."""

    __slots__ = ("n", "counts", "sum")

    def __init__(self) -> None:
        self.n = 0
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0


# A tally's copy: (key, n, bucket counts, seconds) per entry, and the bad messages.
_Copy = tuple[list[tuple[CallKey, int, list[int], float]], int]


class _Tally:
    """Counts written by one thread at a time (see the module docstring).

    One dict lookup per message: the entry of a (direction, action, result)
    holds its count and its latency buckets together.
    """

    __slots__ = ("entries", "bad_messages")

    def __init__(self) -> None:
        self.entries: dict[CallKey, _Entry] = {}
        self.bad_messages = 0

    def count(self, key: CallKey, started: float) -> None:
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry()
        entry.n += 1
        if started:
            seconds = clock() - started
            entry.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            entry.sum += seconds

    def copy(self) -> _Copy:
        return [(key, e.n, list(e.counts), e.sum) for key, e in list(self.entries.items())], \
            self.bad_messages

    def add(self, figures: _Copy) -> None:
        entries, bad = figures
        for key, n, counts, total in entries:
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = _Entry()
            entry.n += n
            entry.counts = [a + b for a, b in zip(entry.counts, counts, strict=True)]
            entry.sum += total
        self.bad_messages += bad

    def figures(self) -> CallFigures:
        latency: dict[LatencyKey, _Entry] = {}
        for (direction, action, _), entry in self.entries.items():
            if any(entry.counts):
                timing = latency.setdefault((direction, action), _Entry())
                timing.counts = [a + b for a, b in zip(timing.counts, entry.counts, strict=True)]
                timing.sum += entry.sum
        return CallFigures({key: e.n for key, e in self.entries.items()},
                           {key: Histogram(BUCKETS, tuple(e.counts), e.sum) for key, e in latency.items()},
                           self.bad_messages)


def error_label(code: str) -> str:
    """A CALLERROR code as a label: the 2.x spelling, or ``"other"`` for a code OCPP lacks."""
    code = normalise_code(code)
    return code if wire_code(code, "2.1") == code else OTHER


def answer_result(text: str) -> str:
    """The result label of an answer we wrote: ``"answered"``, or its CALLERROR code."""
    if text.startswith("[3,"):
        return ANSWERED
    try:
        return error_label(str(orjson.loads(text)[2]))
    except (orjson.JSONDecodeError, IndexError, TypeError):
        return error_label(error_code(INTERNAL, "2.1"))


class ConnectionMetrics:
    """One connection's counts; its runtime calls the method of the role it holds.

    ``on_close`` (the owner's) gets it once, when :meth:`close` is called.
    """

    __slots__ = ("reading", "handling", "_rare", "_rare_lock", "_actions", "_on_close")

    def __init__(self, version: str,
                 on_close: Callable[[ConnectionMetrics], None] | None = None) -> None:
        self.reading = _Tally()    # the reading role's
        self.handling = _Tally()   # the handling role's
        self._rare = _Tally()      # any thread's, under _rare_lock
        self._rare_lock = threading.Lock()
        self._actions = version_module(version).REQUESTS   # shared: nothing per connection
        self._on_close = on_close

    def action_label(self, action: str) -> str:
        return action if action in self._actions else UNKNOWN

    def answered_in(self, action: str, text: str, received: float) -> None:
        """The handling role wrote ``text``, the answer to a call read at ``received``."""
        result = ANSWERED if text.startswith("[3,") else answer_result(text)
        self.handling.count((IN, action, result), received)

    def handled_send(self, action: str) -> None:
        """The handling role ran the handler of a 2.1 SEND (never answered)."""
        self.handling.count((IN, action, SEND), 0.0)

    def refused_in(self, action: str, reply: str, received: float) -> None:
        """The reading role answered a call with a CALLERROR as it read it."""
        self.reading.count((IN, self.action_label(action), answer_result(reply)), received)

    def answer_out(self, action: str, exc: BaseException | None, sent: float) -> None:
        """The reading role read the answer to our ``action`` call, written at ``sent``."""
        if exc is None:
            result = ANSWERED
        else:
            result = error_label(exc.code) if isinstance(exc, CallError) else INVALID
        self.reading.count((OUT, action, result), sent)

    def bad_message(self) -> None:
        """The reading role read a frame that is no OCPP-J frame."""
        self.reading.bad_messages += 1

    def other(self, direction: str, action: str, result: str) -> None:
        """An outcome decided outside the two roles: a timeout, a close, a SEND."""
        with self._rare_lock:
            self._rare.count((direction, self.action_label(action), result), 0.0)

    def tallies(self) -> list[_Copy]:
        """Copies of the three tallies (see the module docstring for why no lock is needed)."""
        with self._rare_lock:
            rare = self._rare.copy()
        return [self.reading.copy(), self.handling.copy(), rare]

    def close(self) -> None:
        """The connection ended: hand the counts to the owner, once."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)


class MetricsTotals:
    """The counts of every connection one owner (a CSMS, a charge point) has had.

    :meth:`attach` makes each new connection's :class:`ConnectionMetrics`;
    an ended one is folded in; :meth:`figures` adds up the ended and the live
    ones. Attaching, folding and reading take a lock: once per connection or
    per read, never per message. It also counts what the owner's security
    events report (:meth:`counting`): refused handshakes by reason and HTTP
    status, connections closed for misbehaving by reason.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, ConnectionMetrics] = {}
        self._ended = _Tally()
        self.connects = 0
        self.disconnects = 0
        self._refusals: dict[tuple[str, int | None], int] = {}
        self._closes: dict[str, int] = {}

    def attach(self, version: str) -> ConnectionMetrics:
        """The counts of a connection that has just opened (a connect)."""
        metrics = ConnectionMetrics(version, self._fold)
        with self._lock:
            self._live[id(metrics)] = metrics
            self.connects += 1
        return metrics

    def _fold(self, metrics: ConnectionMetrics) -> None:
        tallies = metrics.tallies()
        with self._lock:
            if self._live.pop(id(metrics), None) is None:
                return
            for tally in tallies:
                self._ended.add(tally)
            self.disconnects += 1

    def refused(self, reason: str, status: int | None) -> None:
        """A handshake was refused (or a connection closed at once after its 101)."""
        with self._lock:
            key = (reason, status)
            self._refusals[key] = self._refusals.get(key, 0) + 1

    def closed_for(self, reason: str) -> None:
        """An open connection was closed for misbehaving."""
        with self._lock:
            self._closes[reason] = self._closes.get(reason, 0) + 1

    def security_event(self, event: SecurityEvent) -> None:
        """Count what a security event reports: a close for misbehaving, else a refusal.

        Every refusal of the listener and of the WSGI endpoint is reported as
        one event where it is decided, so counting the events counts each once.
        """
        if event.reason in _CLOSES:
            self.closed_for(str(event.reason))
        else:
            self.refused(str(event.reason), event.status)

    def counting(self, hook: SecurityEventHook | None) -> SecurityEventHook:
        """``hook`` (None: none) with every event counted before it runs."""
        def counted(event: SecurityEvent) -> None:
            self.security_event(event)
            if hook is not None:
                hook(event)
        return counted

    def figures(self) -> tuple[CallFigures, dict[tuple[str, int | None], int], dict[str, int], int, int]:
        """(calls, refusals, closes, connects, disconnects), added up now."""
        with self._lock:
            live = list(self._live.values())
            total = _Tally()
            total.add(self._ended.copy())
            refusals, closes = dict(self._refusals), dict(self._closes)
            connects, disconnects = self.connects, self.disconnects
        for metrics in live:
            for tally in metrics.tallies():
                total.add(tally)
        return total.figures(), refusals, closes, connects, disconnects

