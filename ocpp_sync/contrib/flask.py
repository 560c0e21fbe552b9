"""Mount a CSMS on a route of a Flask app: one process serves the pages and the stations.

::

    app = Flask(__name__)
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"))
    mount(app, csms, "/ocpp/<station_id>",
          authenticate=security.simple_authenticator({"CP_1": "secret"}))

    @app.post("/stations/<station_id>/reset")
    def reset(station_id):
        station = csms.stations[station_id]      # a normal view calls a station, blocking
        return {"status": station.send(v16.ResetRequest(type="Soft")).status}

Serve it with werkzeug's threaded server (``app.run(threaded=True)``, the
default) or gunicorn with gthread workers, as ONE worker: each connected
station keeps a request thread, and every view must see the same CSMS
(``gunicorn -k gthread --workers 1 --threads 64 app:app``).

Handlers run in the station's dispatcher thread, outside any Flask context:
a handler that needs one opens it (``with app.app_context(): ...``).
The route does its own vetting before the upgrade (see
:class:`~ocpp_sync.contrib.wsgi.StationEndpoint`), so it does not use
flask-sock's ``Sock.route``, which upgrades any request before the view runs;
both can live in the same app.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from flask import Blueprint, Flask, Response, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("ocpp_sync.contrib.flask needs Flask: pip install 'ocpp_sync[flask]'") from exc

from ocpp_sync import security
from ocpp_sync.contrib.wsgi import Environ, StartResponse, StationEndpoint, finished_response, refusal_response
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.security import Refused
from ocpp_sync.websocket.admission import STRICT_STATION_IDS

__all__ = ["mount", "mount_metrics"]


class _Finished(Response):
    """The answer after the websocket ended: nothing may be written on the connection."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return finished_response(environ, start_response)


def mount(app: Flask | Blueprint, csms: CSMS, rule: str = "/ocpp/<station_id>", *,
          endpoint: str = "ocpp", authenticate: security.Authenticate | None = None,
          known_stations: security.KnownStations | None = None,
          strict_station_ids: bool = STRICT_STATION_IDS,
          on_security_event: security.SecurityEventHook | None = None) -> StationEndpoint:
    """Serve ``csms``'s stations on ``rule``, whose ``<station_id>`` variable names the station.

    The keyword arguments after ``endpoint`` (the Flask endpoint name) are
    :class:`~ocpp_sync.contrib.wsgi.StationEndpoint`'s: refusals (400, 401,
    404, 409, 503) are plain HTTP answers given before the upgrade; a station
    offering none of the CSMS's subprotocols gets a 101 without one and a close (1002).
    """
    if "station_id>" not in rule:
        raise ValueError("the rule needs a <station_id> variable, e.g. '/ocpp/<station_id>'")
    station_endpoint = StationEndpoint(csms, authenticate=authenticate, known_stations=known_stations,
                                       strict_station_ids=strict_station_ids,
                                       on_security_event=on_security_event)

    def serve_station(station_id: str, **_: Any) -> Response:
        environ = request.environ
        try:
            subprotocol = station_endpoint.check(environ, station_id)
        except Refused as refused:
            status, headers, body = refusal_response(refused)
            return Response(body, status=status, headers=headers)
        station_endpoint.serve(environ, station_id, subprotocol)
        return _Finished(status=101)

    # websocket=True: werkzeug's router sends upgrade requests only to websocket rules.
    app.add_url_rule(rule, endpoint, serve_station, websocket=True)
    return station_endpoint


def mount_metrics(app: Flask, *sources: Any, path: str = "/metrics") -> None:
    """Serve the figures of ``sources`` (a CSMS, charge points) at ``path``, for Prometheus.

    Needs the ``metrics`` extra. Requests under ``path`` go to prometheus_client's
    WSGI app over a registry of our own (see ``ocpp_sync.runtime.prometheus``),
    through werkzeug's DispatcherMiddleware; the app's other routes are untouched.
    """
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from ocpp_sync.runtime.prometheus import metrics_app

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {path: metrics_app(*sources)})  # type: ignore[method-assign]
