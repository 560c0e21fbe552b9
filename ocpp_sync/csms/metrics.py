"""The CSMS's figures: a plain snapshot for scripts, and a Prometheus endpoint on a port of its own."""
from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from ocpp_sync.metrics import CSMSMetrics
from ocpp_sync.runtime.metrics import MetricsTotals

__all__ = ["CSMSFigures"]

log = logging.getLogger("ocpp_sync.csms")


class _Server(Protocol):
    """What the CSMS keeps of its metrics server (``runtime.prometheus.MetricsServer``)."""

    port: int

    def stop(self, timeout: float = 5.0) -> None: ...


class CSMSFigures:
    """The metrics half of ``CSMS``; its stations' connections count into ``_metrics``."""

    _changed: threading.Condition
    _stations: dict[str, Any]
    _metrics: MetricsTotals
    _metrics_server: _Server | None = None

    def metrics(self) -> CSMSMetrics:
        """A snapshot of the figures since this CSMS was made (see docs/metrics.md).

        Cheap enough to call often: it adds up each connection's counts, with
        no lock that a message would wait for.
        """
        with self._changed:
            connected = len(self._stations)
        calls, refusals, closes, connects, disconnects = self._metrics.figures()
        return CSMSMetrics(calls.calls, calls.latency, calls.bad_messages,
                           stations_connected=connected, connects=connects,
                           disconnects=disconnects, refusals=refusals, closes=closes)

    def serve_metrics(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Serve the figures in Prometheus's text format on ``http://host:port/`` until :meth:`stop`.

        Needs the ``metrics`` extra (``pip install 'ocpp_sync[metrics]'``).
        ``port=0`` picks a free port; returns the port. ``host`` is loopback
        by default: give ``"0.0.0.0"`` for a scraper on another machine.
        The figures are read at scrape time, never per message.
        """
        from ocpp_sync.runtime.prometheus import MetricsServer

        with self._changed:
            if self._metrics_server is not None:
                raise RuntimeError(f"metrics are served already, on port {self._metrics_server.port}")
            server = self._metrics_server = MetricsServer(self, host=host, port=port)
        server.start()
        log.info("CSMS metrics on http://%s:%d/", host, server.port)
        return server.port

    def _stop_metrics(self, timeout: float) -> None:
        with self._changed:
            server, self._metrics_server = self._metrics_server, None
        if server is not None:
            server.stop(timeout)
