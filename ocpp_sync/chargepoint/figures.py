"""The charge point's figures: its calls and its offline queue's depth, as a plain snapshot."""
from __future__ import annotations

from ocpp_sync.metrics import ChargePointMetrics
from ocpp_sync.runtime.metrics import MetricsTotals

__all__ = ["ChargePointFigures"]


class ChargePointFigures:
    """The metrics half of ``ChargePoint``; each connection it opens counts into ``_metrics``."""

    _metrics: MetricsTotals

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    @property
    def queued(self) -> int:
        raise NotImplementedError

    def metrics(self) -> ChargePointMetrics:
        """A snapshot of the figures of every connection this object opened (see docs/metrics.md).

        ``queued`` is the queue's depth now, as :attr:`ChargePoint.queued` reads it.
        """
        calls, _, _, connects, disconnects = self._metrics.figures()
        return ChargePointMetrics(calls.calls, calls.latency, calls.bad_messages,
                                  connected=self.connected, queued=self.queued,
                                  connects=connects, disconnects=disconnects)
