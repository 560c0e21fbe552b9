"""The ``metrics`` extra: the figures of a CSMS and of charge points for Prometheus.

A custom collector reads each source's snapshot (``metrics()``) when
Prometheus scrapes, so nothing is done per message beyond the plain counts of
``runtime.metrics``. The names and labels are listed in docs/metrics.md.
:class:`MetricsServer` serves a registry on a port of its own;
:func:`metrics_app` gives the WSGI app to mount in a web app instead.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

try:
    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("ocpp_sync's Prometheus metrics need prometheus_client: "
                      "pip install 'ocpp_sync[metrics]'") from exc

from ocpp_sync.metrics import CallFigures, ChargePointMetrics, CSMSMetrics

__all__ = ["OCPPCollector", "MetricsServer", "metrics_app", "registry_for"]

log = logging.getLogger("ocpp_sync.metrics")

_REQUEST_TIMEOUT = 5.0   # seconds a scraper may take to send its request
_POLL = 0.1              # how often the server thread looks at its stop flag


class Source(Protocol):
    """A CSMS or a ChargePoint: anything whose ``metrics()`` gives a snapshot."""

    def metrics(self) -> CSMSMetrics | ChargePointMetrics: ...


class OCPPCollector(Collector):
    """Prometheus families made from the sources' snapshots at each scrape.

    ``sources``: at most one CSMS (families ``ocpp_csms_*``) and any number of
    charge points (``ocpp_charge_point_*``, labelled by ``station``: the id).
    """

    def __init__(self, *sources: Source) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        stations: list[tuple[str, ChargePointMetrics]] = []
        for source in self.sources:
            snapshot = source.metrics()
            if isinstance(snapshot, CSMSMetrics):
                yield from _csms_families(snapshot)
            else:
                stations.append((str(getattr(source, "id", "")), snapshot))
        if stations:
            yield from _charge_point_families(stations)


def _gauge(name: str, doc: str, labels: Sequence[str], series: Iterable[tuple[Sequence[str], float]],
           kind: Callable[..., Any] = GaugeMetricFamily) -> Metric:
    family = kind(name, doc, labels=list(labels))
    for values, value in series:
        family.add_metric(list(values), value)
    return family  # type: ignore[no-any-return]


def _counter(name: str, doc: str, labels: Sequence[str],
             series: Iterable[tuple[Sequence[str], float]]) -> Metric:
    return _gauge(name, doc, labels, series, CounterMetricFamily)


def _call_families(prefix: str, labels: Sequence[str],
                   sides: Sequence[tuple[Sequence[str], CallFigures]]) -> Iterator[Metric]:
    yield _counter(f"{prefix}_calls", "Calls by direction (in: the peer's), action and result",
                   [*labels, "direction", "action", "result"],
                   [([*values, *key], n) for values, figures in sides
                    for key, n in sorted(figures.calls.items())])
    durations = HistogramMetricFamily(f"{prefix}_call_duration_seconds",
                                      "Seconds from a call to its answer, by direction and action",
                                      labels=[*labels, "direction", "action"])
    for values, figures in sides:
        for key, histogram in sorted(figures.latency.items()):
            bounds = [*(f"{b:g}" for b in histogram.buckets), "+Inf"]
            durations.add_metric([*values, *key], list(zip(bounds, histogram.cumulative, strict=True)),
                                 histogram.sum)
    yield durations
    yield _counter(f"{prefix}_bad_messages", "Frames that were no OCPP-J frame", labels,
                   [(values, figures.bad_messages) for values, figures in sides])


def _csms_families(snapshot: CSMSMetrics) -> Iterator[Metric]:
    yield _gauge("ocpp_csms_stations_connected", "Stations connected now", [],
                 [((), snapshot.stations_connected)])
    yield _counter("ocpp_csms_connects", "Station connections let in", [], [((), snapshot.connects)])
    yield _counter("ocpp_csms_disconnects", "Station connections ended", [],
                   [((), snapshot.disconnects)])
    yield _counter("ocpp_csms_refusals", "Handshakes refused, by reason and HTTP status",
                   ["reason", "status"],
                   [((reason, "" if status is None else str(status)), n)
                    for (reason, status), n in sorted(snapshot.refusals.items(), key=str)])
    yield _counter("ocpp_csms_closes", "Open connections closed for misbehaving, by reason",
                   ["reason"], [((reason,), n) for reason, n in sorted(snapshot.closes.items())])
    yield from _call_families("ocpp_csms", [], [((), snapshot)])


def _charge_point_families(stations: Sequence[tuple[str, ChargePointMetrics]]) -> Iterator[Metric]:
    label = ["station"]
    yield _gauge("ocpp_charge_point_connected", "1 while the charge point is connected", label,
                 [((sid,), int(s.connected)) for sid, s in stations])
    yield _gauge("ocpp_charge_point_queued_messages", "Messages in the offline queue", label,
                 [((sid,), s.queued) for sid, s in stations])
    yield _counter("ocpp_charge_point_connects", "Connections opened", label,
                   [((sid,), s.connects) for sid, s in stations])
    yield _counter("ocpp_charge_point_disconnects", "Connections lost or closed", label,
                   [((sid,), s.disconnects) for sid, s in stations])
    yield from _call_families("ocpp_charge_point", label, [((sid,), s) for sid, s in stations])


def registry_for(*sources: Source) -> CollectorRegistry:
    """A registry of its own holding an :class:`OCPPCollector` of ``sources``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OCPPCollector(*sources))
    return registry


def metrics_app(*sources: Source) -> Callable[..., Any]:
    """A WSGI app that answers every request with the sources' figures (to mount at /metrics)."""
    return make_wsgi_app(registry_for(*sources))


class _QuietHandler(WSGIRequestHandler):
    timeout = _REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics scrape: " + format, *args)


class MetricsServer:
    """An HTTP server for the figures of ``sources``, in one thread ("ocpp-metrics-<port>").

    One scrape at a time is plenty for Prometheus; a scraper that holds the
    connection without a request is dropped after a few seconds. ``port=0``
    picks a free port (see ``.port``).
    """

    def __init__(self, *sources: Source, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd: WSGIServer = make_server(host, port, metrics_app(*sources),
                                              handler_class=_QuietHandler)
        self._httpd.timeout = _POLL
        self.port: int = self._httpd.server_port
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"ocpp-metrics-{self.port}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._httpd.handle_request()   # returns after _POLL seconds without a request

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, join the thread (at most ``timeout`` seconds), close the socket."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                log.warning("the metrics server on port %d did not stop in time", self.port)
                return
        self._httpd.server_close()
