"""ocpp_sync.contrib.flask in real server processes: the Flask example under werkzeug and gunicorn.

Each server runs examples/flask_csms/app.py (through tests/contrib_flask_app.py, which adds
/_test/ endpoints that report from inside the process) with station passwords set; real
charge points connect to it over loopback.
"""
from __future__ import annotations

import importlib.util
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync import security, v16, v201

pytest.importorskip("flask", reason="the flask extra is not installed (pip install flask)")

from support.contrib_support import (  # noqa: E402
    EXAMPLES,
    GUNICORN_READY,
    WERKZEUG_READY,
    ServerProcess,
    Web,
    close_code_after_upgrade,
    gunicorn,
    raw_upgrade,
    werkzeug_flask,
)

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

PASSWORDS = {"CP_16": "s3:cret", "CP_201": "pässword", "CP_X": "other"}
WAIT = 10.0


@pytest.fixture(scope="module", params=["werkzeug", "gunicorn"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    if request.param == "gunicorn":
        if importlib.util.find_spec("gunicorn") is None:
            pytest.skip("gunicorn is not installed (pip install gunicorn)")
        argv, ready = gunicorn(EXAMPLES / "flask_csms" / "gunicorn.conf.py", "contrib_flask_app:app"), \
            GUNICORN_READY
    else:
        argv, ready = werkzeug_flask(), WERKZEUG_READY
    env = {"STATION_PASSWORDS": ",".join(f"{k}={v}" for k, v in PASSWORDS.items())}
    process = ServerProcess(argv, ready=ready, env=env)
    yield process
    process.stop()


def auth(station_id: str, password: str) -> dict[str, str]:
    return {"Authorization": security.basic_authorization(station_id, password)}


class Station:
    """A real charge point that records the Reset requests it gets."""

    def __init__(self, server: ServerProcess, station_id: str, version: str,
                 password: str | None = None) -> None:
        self.resets: queue.Queue[Any] = queue.Queue()
        m = v16 if version == "1.6" else v201
        self.m = m
        self.cp = ocpp_sync.ChargePoint(
            station_id, server.ws, version=version, timeout=WAIT, reconnect=False, ping_interval=None,
            headers=auth(station_id, password if password is not None else PASSWORDS[station_id]))

        @self.cp.on(m.ResetRequest)
        def on_reset(request: Any) -> Any:
            self.resets.put(request)
            return m.ResetResponse(status="Accepted")

    def boot(self) -> None:
        self.cp.connect()
        # Answered means registered: the CSMS adds a station before it reads its first message.
        if self.m is v16:
            answer = self.cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME",
                                                              charge_point_model="X1"))
        else:
            answer = self.cp.send(v201.BootNotificationRequest(
                charging_station=v201.ChargingStationType(vendor_name="ACME", model="X1"),
                reason=v201.BootReasonEnumType.POWER_UP))
        assert answer.status == "Accepted"


def assert_server_let_go(web: Web, station_id: str) -> None:
    """The CSMS dropped the station and every thread it ran for it has ended."""
    assert web.json(f"/_test/gone/{station_id}") == (200, {"gone": True})
    assert web.json("/_test/threads") == (200, {"threads": []})


@pytest.mark.parametrize(("station_id", "version", "reset_type"),
                         [("CP_16", "1.6", "Soft"), ("CP_201", "2.0.1", "Immediate")])
def test_web_endpoint_resets_a_connected_station(server: ServerProcess, station_id: str, version: str,
                                                 reset_type: str) -> None:
    web = Web(server.base)
    station = Station(server, station_id, version)
    station.boot()
    try:
        status, page = web.request("/")
        assert status == 200
        assert f"<td>{station_id}</td><td>{version}</td>".encode() in page
        assert b"ACME X1" in page

        assert web.json(f"/stations/{station_id}/reset", method="POST") == \
            (200, {"station": station_id, "status": "Accepted"})
        assert station.resets.get(timeout=WAIT).type == reset_type
        assert web.json("/stations/CP_X/reset", method="POST")[0] == 404
    finally:
        station.cp.close()
    assert_server_let_go(web, station_id)


def test_calls_both_ways_at_once_on_one_connection(server: ServerProcess) -> None:
    """Web requests' Resets (CSMS -> station) cross the station's Heartbeats: every frame arrives whole."""
    web = Web(server.base)
    station = Station(server, "CP_201", "2.0.1")
    station.boot()
    try:
        with ThreadPoolExecutor(12, thread_name_prefix="contrib-test") as pool:
            resets = [pool.submit(web.json, "/stations/CP_201/reset", method="POST") for _ in range(8)]
            beats = [pool.submit(station.cp.send, v201.HeartbeatRequest()) for _ in range(16)]
            assert all(f.result(WAIT * 2) == (200, {"station": "CP_201", "status": "Accepted"})
                       for f in resets)
            assert all(f.result(WAIT * 2).current_time is not None for f in beats)
        assert station.resets.qsize() == 8
    finally:
        station.cp.close()
    assert_server_let_go(web, "CP_201")


def test_no_common_subprotocol_gets_a_101_without_one_and_a_close(server: ServerProcess) -> None:
    """OCPP-J: no HTTP refusal, a 101 naming no subprotocol, then close 1002 at once."""
    for offered in (["ocpp2.1"], []):
        status, headers, _ = raw_upgrade(server.port, "/ocpp/CP_16", offered, auth("CP_16", PASSWORDS["CP_16"]))
        assert status == 101 and "Sec-WebSocket-Protocol" not in headers
    assert close_code_after_upgrade(server.port, "/ocpp/CP_16", "ocpp2.1", auth("CP_16", PASSWORDS["CP_16"])) == 1002

    cp = ocpp_sync.ChargePoint("CP_16", server.ws, version="2.1", reconnect=False, ping_interval=None,
                               headers=auth("CP_16", PASSWORDS["CP_16"]))
    with pytest.raises(ocpp_sync.HandshakeError) as refused:
        cp.connect()
    cp.close()
    assert refused.value.permanent and refused.value.status is None


def test_offered_subprotocols_get_the_newest_in_common(server: ServerProcess) -> None:
    """Offered 1.6 and 2.0.1, a station gets 2.0.1 (what the CSMS prefers), whatever the order."""
    web = Web(server.base)
    status, headers, _ = raw_upgrade(server.port, "/ocpp/CP_16", ["ocpp1.6", "ocpp2.0.1"],
                                     auth("CP_16", PASSWORDS["CP_16"]))
    assert status == 101
    assert headers["Sec-WebSocket-Protocol"] == "ocpp2.0.1"
    assert_server_let_go(web, "CP_16")


@pytest.mark.parametrize("credentials", [
    pytest.param(auth("CP_16", "wrong"), id="wrong-password"),
    pytest.param(auth("CP_16", PASSWORDS["CP_X"]), id="password-of-another-station"),
    pytest.param(auth("CP_X", PASSWORDS["CP_X"]), id="user-is-another-station"),
    pytest.param({}, id="no-credentials"),
    pytest.param({"Authorization": "Bearer abc"}, id="not-basic"),
])
def test_bad_credentials_are_refused_with_401(server: ServerProcess, credentials: dict[str, str]) -> None:
    status, headers, _ = raw_upgrade(server.port, "/ocpp/CP_16", ["ocpp1.6"], credentials)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")


def test_charge_point_with_a_wrong_password_gets_401(server: ServerProcess) -> None:
    station = Station(server, "CP_16", "1.6", password="wrong")
    with pytest.raises(ocpp_sync.HandshakeError) as refused:
        station.cp.connect()
    station.cp.close()
    assert refused.value.status == 401
    assert refused.value.permanent


def test_pages_still_served_and_plain_get_of_the_station_url_is_not_upgraded(server: ServerProcess) -> None:
    web = Web(server.base)
    assert web.request("/")[0] == 200
    status, _ = web.request("/ocpp/CP_16")
    assert status == 400


def test_stations_connect_and_leave_while_the_page_is_served(server: ServerProcess) -> None:
    """Several stations at once, each on its own server thread, all released after they leave."""
    web = Web(server.base)
    stations = [Station(server, "CP_16", "1.6"), Station(server, "CP_201", "2.0.1"),
                Station(server, "CP_X", "2.0.1")]
    threads = [threading.Thread(target=s.boot, name=f"contrib-boot-{s.cp.id}") for s in stations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    try:
        page = web.request("/")[1]
        assert all(f"<td>{s.cp.id}</td>".encode() in page for s in stations)
    finally:
        for s in stations:
            s.cp.close()
    for s in stations:
        assert web.json(f"/_test/gone/{s.cp.id}") == (200, {"gone": True})
    assert web.json("/_test/threads") == (200, {"threads": []})


# -- mount() in this process: a blueprint, under werkzeug's threaded server -------------------------

def test_mount_on_a_blueprint_in_process() -> None:
    from flask import Blueprint, Flask
    from werkzeug.serving import make_server

    from ocpp_sync.contrib.flask import mount

    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT)
    app = Flask(__name__)
    blueprint = Blueprint("stations", __name__, url_prefix="/cs")
    mount(blueprint, csms, "/ws/<station_id>")
    app.register_blueprint(blueprint)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="contrib-werkzeug", daemon=True)
    thread.start()
    resets: queue.Queue[Any] = queue.Queue()
    cp = ocpp_sync.ChargePoint("CP_1", f"ws://127.0.0.1:{server.port}/cs/ws", version="1.6", timeout=WAIT,
                               reconnect=False, ping_interval=None)
    cp.on(v16.ResetRequest)(lambda request: resets.put(request) or v16.ResetResponse(status="Accepted"))
    try:
        cp.connect()
        station = csms.wait_for_station("CP_1", timeout=WAIT)
        assert station.send(v16.ResetRequest(type="Hard")).status == "Accepted"
        assert resets.get(timeout=WAIT).type == "Hard"
    finally:
        cp.close()
        csms.stop()
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def test_mount_needs_a_station_id_in_the_rule() -> None:
    from flask import Flask

    from ocpp_sync.contrib.flask import mount

    with pytest.raises(ValueError, match="station_id"):
        mount(Flask(__name__), ocpp_sync.CSMS(versions=("1.6",)), "/ocpp/<name>")
