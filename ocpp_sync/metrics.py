"""The figures a CSMS or a charge point keeps about its calls, as plain snapshots.

``CSMS.metrics()`` returns a :class:`CSMSMetrics`, ``ChargePoint.metrics()`` a
:class:`ChargePointMetrics`: frozen values, cheap to take, for scripts and
notebooks; the ``metrics`` extra exports the same figures to Prometheus
(``ocpp_sync.contrib.prometheus``). docs/metrics.md says what each one counts.

Labels are bounded whatever the peer sends: an action the version does not
define counts as ``"unknown"``, a CALLERROR code OCPP does not define as
``"other"``, and codes are counted in their 2.x spelling (FormatViolation,
not 1.6's FormationViolation).
"""
from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["BUCKETS", "IN", "OUT", "ANSWERED", "TIMEOUT", "CLOSED", "INVALID", "SEND", "UNKNOWN",
           "OTHER", "Histogram", "CallFigures", "CSMSMetrics", "ChargePointMetrics"]

#: The upper bounds, in seconds, of the latency buckets; one more bucket holds what is slower.
BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                              2.5, 5.0, 10.0, 30.0)
IN = "in"     # the peer's calls, which we answer
OUT = "out"   # our calls, which the peer answers
ANSWERED = "answered"   # a CALLRESULT
TIMEOUT = "timeout"     # no answer in time
CLOSED = "closed"       # the connection ended before the answer
INVALID = "invalid"     # the answer came but could not be read (broken frame, schema)
SEND = "send"           # a 2.1 SEND, which is never answered
UNKNOWN = "unknown"     # an action the version does not define
OTHER = "other"         # a CALLERROR code OCPP does not define

CallKey = tuple[str, str, str]   # (direction, action, result)
LatencyKey = tuple[str, str]     # (direction, action)


@attrs.frozen
class Histogram:
    """How long the calls of one action took, by bucket.

    ``counts[i]`` is the number of calls that took at most ``buckets[i]``
    seconds and more than the bucket before; the last count (one more than
    there are bounds) is the calls slower than every bound. ``sum`` is their
    total time in seconds.
    """

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        """How many calls were timed."""
        return sum(self.counts)

    @property
    def cumulative(self) -> tuple[int, ...]:
        """Prometheus's form: the calls that took at most each bound, then all of them."""
        total, out = 0, []
        for count in self.counts:
            total += count
            out.append(total)
        return tuple(out)


@attrs.frozen
class CallFigures:
    """The calls of one side, both directions, since it started.

    ``calls`` maps (direction, action, result) to a count: direction ``"in"``
    for the peer's calls (which we answered), ``"out"`` for ours; result
    ``"answered"``, a CALLERROR code, ``"timeout"``, ``"closed"``,
    ``"invalid"`` or ``"send"`` (see the module docstring). ``latency`` maps
    (direction, action) to a :class:`Histogram`: for ``"in"``, from reading
    the call to writing its answer; for ``"out"``, from writing the call to
    reading its answer. ``bad_messages`` counts frames that were no OCPP-J
    frame at all.
    """

    calls: Mapping[CallKey, int] = attrs.field(factory=dict)
    latency: Mapping[LatencyKey, Histogram] = attrs.field(factory=dict)
    bad_messages: int = 0

    def total(self, direction: str | None = None, action: str | None = None,
              result: str | None = None) -> int:
        """The calls that match every argument given (None: any)."""
        return sum(n for (d, a, r), n in self.calls.items()
                   if direction in (None, d) and action in (None, a) and result in (None, r))


@attrs.frozen
class CSMSMetrics(CallFigures):
    """What ``CSMS.metrics()`` returns: its stations' calls (see :class:`CallFigures`) and connections.

    ``stations_connected`` is the number connected now; ``connects`` and
    ``disconnects`` count connections let in and ended since the CSMS was made;
    ``refusals`` maps (reason, HTTP status) to the handshakes refused, the
    reason a ``security.Reason`` value and the status None when no HTTP answer
    was given (a failed TLS handshake, no common subprotocol); ``closes`` maps
    a reason (``"message_too_large"``, ``"bad_messages"``) to the open
    connections closed for misbehaving.
    """

    stations_connected: int = 0
    connects: int = 0
    disconnects: int = 0
    refusals: Mapping[tuple[str, int | None], int] = attrs.field(factory=dict)
    closes: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen
class ChargePointMetrics(CallFigures):
    """What ``ChargePoint.metrics()`` returns: its calls (see :class:`CallFigures`) and its link.

    ``queued`` is the depth of its offline queue now (messages not yet answered
    nor given up); ``connected`` whether a connection is open; ``connects`` and
    ``disconnects`` count the connections it opened and lost.
    """

    connected: bool = False
    queued: int = 0
    connects: int = 0
    disconnects: int = 0
