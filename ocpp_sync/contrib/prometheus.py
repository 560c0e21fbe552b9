"""The ``metrics`` extra's public names: Prometheus exposition of CSMS and charge point figures.

``CSMS.serve_metrics(port)`` covers the usual case; these are for the others:
a WSGI app to mount in a web app (:func:`metrics_app`; Flask: ``contrib.flask.mount_metrics``),
a server for charge points' figures (:class:`MetricsServer`), or a registry of
one's own (:func:`registry_for`, :class:`OCPPCollector`). The code lives in the
runtime layer, so that the CSMS can serve it; docs/metrics.md lists the names.
"""
from __future__ import annotations

from ocpp_sync.runtime.prometheus import MetricsServer, OCPPCollector, metrics_app, registry_for

__all__ = ["MetricsServer", "OCPPCollector", "metrics_app", "registry_for"]
