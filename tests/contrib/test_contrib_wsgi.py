"""ocpp_sync.contrib.wsgi: the Django example under gunicorn gthread, and the middleware in process.

The Django server runs examples/django_csms (through tests/contrib_django_wsgi.py, which adds
/_test/ endpoints that report from inside the process) with station passwords set.
"""
from __future__ import annotations

import base64
import importlib.util
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.contrib_support import (
    EXAMPLES,
    GUNICORN_READY,
    ServerProcess,
    Web,
    close_code_after_upgrade,
    gunicorn,
    raw_upgrade,
)

import ocpp_sync
from ocpp_sync import security, v16, v201
from ocpp_sync.contrib.wsgi import CSMSMiddleware

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

PASSWORDS = {"CP_16": "s3:cret", "CP_201": "other"}
WAIT = 10.0


def auth(station_id: str, password: str) -> dict[str, str]:
    return {"Authorization": security.basic_authorization(station_id, password)}


def charge_point(url: str, station_id: str, version: str, resets: queue.Queue[Any],
                 headers: dict[str, str] | None = None) -> ocpp_sync.ChargePoint:
    m = v16 if version == "1.6" else v201
    cp = ocpp_sync.ChargePoint(station_id, url, version=version, timeout=WAIT, reconnect=False,
                               ping_interval=None, headers=headers)

    @cp.on(m.ResetRequest)
    def on_reset(request: Any) -> Any:
        resets.put(request)
        return m.ResetResponse(status="Accepted")

    return cp


# -- Django under gunicorn (gthread) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def django_server() -> Iterator[ServerProcess]:
    for module in ("django", "gunicorn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install {module})")
    process = ServerProcess(
        gunicorn(EXAMPLES / "django_csms" / "gunicorn.conf.py", "contrib_django_wsgi:application"),
        ready=GUNICORN_READY,
        env={"STATION_PASSWORDS": ",".join(f"{k}={v}" for k, v in PASSWORDS.items())})
    yield process
    process.stop()


def csrf_post(web: Web, path: str) -> tuple[int, Any]:
    """POST the way the example page's button does: the CSRF token from the page, its cookie kept."""
    status, page = web.request("/")
    assert status == 200
    match = re.search(rb'name="csrf-token" content="([^"]+)"', page)
    assert match, page
    return web.json(path, method="POST", headers={"X-CSRFToken": match.group(1).decode()})


@pytest.mark.parametrize(("station_id", "version", "reset_type"),
                         [("CP_16", "1.6", "Soft"), ("CP_201", "2.0.1", "Immediate")])
def test_django_view_resets_a_connected_station(django_server: ServerProcess, station_id: str, version: str,
                                                reset_type: str) -> None:
    web = Web(django_server.base)
    resets: queue.Queue[Any] = queue.Queue()
    cp = charge_point(django_server.ws, station_id, version, resets, auth(station_id, PASSWORDS[station_id]))
    cp.connect()
    try:
        # Answered means registered: the CSMS adds a station before it reads its first message.
        cp.send(v16.HeartbeatRequest() if version == "1.6" else v201.HeartbeatRequest())
        page = web.request("/")[1]
        assert f"<td>{station_id}</td><td>{version}</td>".encode() in page

        assert csrf_post(web, f"/stations/{station_id}/reset") == \
            (200, {"station": station_id, "status": "Accepted"})
        assert resets.get(timeout=WAIT).type == reset_type
        assert csrf_post(web, "/stations/CP_NONE/reset")[0] == 404
        # Django's CSRF protection is untouched by the middleware.
        assert web.request(f"/stations/{station_id}/reset", method="POST")[0] == 403
    finally:
        cp.close()
    assert web.json(f"/_test/gone/{station_id}") == (200, {"gone": True})
    assert web.json("/_test/threads") == (200, {"threads": []})


def test_django_no_common_subprotocol_gets_a_101_without_one_and_a_close(django_server: ServerProcess) -> None:
    status, headers, _ = raw_upgrade(django_server.port, "/ocpp/CP_16", ["ocpp2.1"],
                                     auth("CP_16", PASSWORDS["CP_16"]))
    assert status == 101 and "Sec-WebSocket-Protocol" not in headers
    assert close_code_after_upgrade(django_server.port, "/ocpp/CP_16", "ocpp2.1",
                                    auth("CP_16", PASSWORDS["CP_16"])) == 1002


@pytest.mark.parametrize("credentials", [
    pytest.param(auth("CP_16", "wrong"), id="wrong-password"),
    pytest.param(auth("CP_16", PASSWORDS["CP_201"]), id="password-of-another-station"),
    pytest.param({}, id="no-credentials"),
])
def test_django_bad_credentials_are_refused_with_401(django_server: ServerProcess,
                                                     credentials: dict[str, str]) -> None:
    status, headers, _ = raw_upgrade(django_server.port, "/ocpp/CP_16", ["ocpp1.6"], credentials)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    cp = charge_point(django_server.ws, "CP_16", "1.6", queue.Queue(), credentials)
    with pytest.raises(ocpp_sync.HandshakeError) as refused:
        cp.connect()
    cp.close()
    assert refused.value.status == 401


def test_django_gets_everything_that_is_not_a_station_upgrade(django_server: ServerProcess) -> None:
    web = Web(django_server.base)
    assert web.request("/")[0] == 200
    # Under the prefix but not an upgrade: Django answers (it has no such URL).
    assert web.request("/ocpp/CP_16")[0] == 404
    # An upgrade elsewhere is not a station either.
    assert raw_upgrade(django_server.port, "/elsewhere/CP_16", ["ocpp1.6"],
                       auth("CP_16", PASSWORDS["CP_16"]))[0] == 404


# -- the middleware in this process, under werkzeug's threaded server ------------------------------

def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


@pytest.fixture
def werkzeug_csms() -> Iterator[tuple[ocpp_sync.CSMS, int]]:
    serving = pytest.importorskip("werkzeug.serving", reason="werkzeug is not installed")
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=WAIT, on_duplicate="refuse")
    server = serving.make_server("127.0.0.1", 0, CSMSMiddleware(hello, csms, "/ocpp", strict_station_ids=True),
                                 threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="contrib-werkzeug", daemon=True)
    thread.start()
    try:
        yield csms, server.port
    finally:
        csms.stop()
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def test_middleware_serves_a_station_and_the_app(werkzeug_csms: tuple[ocpp_sync.CSMS, int]) -> None:
    csms, port = werkzeug_csms
    resets: queue.Queue[Any] = queue.Queue()
    cp = charge_point(f"ws://127.0.0.1:{port}/ocpp", "CP 1", "2.0.1", resets)
    cp.connect()
    try:
        # The id travels percent-encoded and comes back decoded.
        station = csms.wait_for_station("CP 1", timeout=WAIT)
        assert station.version == "2.0.1"
        assert station.remote_address.startswith("127.0.0.1:")
        assert station.request.path == "/ocpp/CP%201"
        assert station.request.subprotocols == ("ocpp2.0.1",)
        assert station.request.headers["sec-websocket-protocol"] == "ocpp2.0.1"
        assert station.send(v201.ResetRequest(type="OnIdle")).status == "Accepted"
        assert resets.get(timeout=WAIT).type == "OnIdle"
        web = Web(f"http://127.0.0.1:{port}")
        assert web.request("/") == (200, b"hello")
        assert web.request("/ocpp/CP_2") == (200, b"hello")
    finally:
        cp.close()


@pytest.mark.parametrize("path", ["/ocpp/", "/ocpp/a%2Fb", "/ocpp/%C3%BC", "/ocpp/%FF", "/ocpp/" + "x" * 49])
def test_middleware_refuses_a_malformed_station_id_with_400(werkzeug_csms: tuple[ocpp_sync.CSMS, int],
                                                            path: str) -> None:
    status, _, body = raw_upgrade(werkzeug_csms[1], path, ["ocpp1.6"])
    assert status == 400
    assert b"station id" in body


def test_middleware_security_options_and_events() -> None:
    """known_stations (404), the authenticate hook's own refusal status, and on_security_event."""
    serving = pytest.importorskip("werkzeug.serving", reason="werkzeug is not installed")
    events: queue.Queue[security.SecurityEvent] = queue.Queue()

    def authenticate(station_id: str, password: str | None, certificate: Any, headers: Any) -> bool:
        if station_id == "CP_BANNED":
            raise security.Refused(403, "banned")
        return password == "right"

    csms = ocpp_sync.CSMS(versions=("1.6",))
    app = CSMSMiddleware(hello, csms, authenticate=authenticate, known_stations={"CP_1", "CP_BANNED"},
                         on_security_event=events.put)
    server = serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="contrib-werkzeug", daemon=True)
    thread.start()
    try:
        assert raw_upgrade(server.port, "/ocpp/CP_9", ["ocpp1.6"], auth("CP_9", "right"))[0] == 404
        assert events.get(timeout=WAIT).reason == security.Reason.UNKNOWN_STATION
        assert raw_upgrade(server.port, "/ocpp/CP_BANNED", ["ocpp1.6"], auth("CP_BANNED", "right"))[0] == 403
        assert events.get(timeout=WAIT).status == 403
        assert raw_upgrade(server.port, "/ocpp/CP_1", ["ocpp1.6"], auth("CP_1", "wrong"))[0] == 401
        event = events.get(timeout=WAIT)
        assert (event.reason, event.station_id, event.status) == (security.Reason.BAD_CREDENTIALS, "CP_1", 401)
        assert event.remote_address.startswith("127.0.0.1:")
        assert raw_upgrade(server.port, "/ocpp/%FF", ["ocpp1.6"])[0] == 400
        assert events.get(timeout=WAIT).reason == security.Reason.INVALID_STATION_ID
        cp = charge_point(f"ws://127.0.0.1:{server.port}/ocpp", "CP_1", "1.6", queue.Queue(),
                          auth("CP_1", "right"))
        cp.connect()
        cp.close()
        assert events.empty()
    finally:
        csms.stop()
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def test_profile_3_client_certificate_reaches_the_hook(tmp_path: Any) -> None:
    """Under werkzeug with TLS, the station's verified certificate goes to authenticate."""
    serving = pytest.importorskip("werkzeug.serving", reason="werkzeug is not installed")
    trustme = pytest.importorskip("trustme", reason="trustme is not installed")
    ca = trustme.CA()

    def files(name: str, cert: Any) -> tuple[str, str]:
        (tmp_path / f"{name}.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        (tmp_path / f"{name}.key").write_bytes(cert.private_key_pem.bytes())
        return str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")

    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    server_context = security.server_ssl_context(*files("server", ca.issue_cert("127.0.0.1")),
                                                 cafile=str(tmp_path / "ca.pem"),
                                                 require_client_certificate=True)
    certfile, keyfile = files("cp1", ca.issue_cert("station.invalid", common_name="CP_1"))
    client_context = security.client_ssl_context(cafile=str(tmp_path / "ca.pem"), certfile=certfile,
                                                 keyfile=keyfile)
    csms = ocpp_sync.CSMS(versions=("1.6",))
    app = CSMSMiddleware(hello, csms, authenticate=security.simple_authenticator(require_certificate=True))
    server = serving.make_server("127.0.0.1", 0, app, threaded=True, ssl_context=server_context)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="contrib-werkzeug", daemon=True)
    thread.start()
    try:
        url = f"wss://127.0.0.1:{server.port}/ocpp"
        good = ocpp_sync.ChargePoint("CP_1", url, reconnect=False, ping_interval=None, timeout=WAIT,
                                     sslopt={"context": client_context})
        try:
            good.connect()
            assert csms.wait_for_station("CP_1", timeout=WAIT).connected
        finally:
            good.close()
        # CP_1's certificate does not open CP_2's connection.
        other = ocpp_sync.ChargePoint("CP_2", url, reconnect=False, ping_interval=None, timeout=WAIT,
                                      sslopt={"context": client_context})
        with pytest.raises(ocpp_sync.HandshakeError) as refused:
            other.connect()
        other.close()
        assert refused.value.status == 401
    finally:
        csms.stop()
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def test_middleware_refuses_a_second_connection_with_409_and_stop_closes_the_first(
        werkzeug_csms: tuple[ocpp_sync.CSMS, int]) -> None:
    csms, port = werkzeug_csms
    gone = threading.Event()
    cp = charge_point(f"ws://127.0.0.1:{port}/ocpp", "CP_1", "1.6", queue.Queue())
    cp.on_disconnect = lambda _cp: gone.set()
    cp.connect()
    try:
        csms.wait_for_station("CP_1", timeout=WAIT)
        assert raw_upgrade(port, "/ocpp/CP_1", ["ocpp1.6"])[0] == 409
        csms.stop()
        assert gone.wait(WAIT)
    finally:
        cp.close()


def test_a_station_gone_silent_is_given_up_and_its_thread_released() -> None:
    """With the CSMS's ping_interval, a station that never answers a ping is dropped: the server
    thread it held is free again (a gthread pool would otherwise lose it for good)."""
    serving = pytest.importorskip("werkzeug.serving", reason="werkzeug is not installed")
    csms = ocpp_sync.CSMS(versions=("1.6",), ping_interval=0.2, pong_timeout=0.3)
    gone = threading.Event()
    csms.on_disconnect(lambda station: gone.set())
    server = serving.make_server("127.0.0.1", 0, CSMSMiddleware(hello, csms), threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="contrib-werkzeug", daemon=True)
    thread.start()
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    try:
        # A websocket client that completes the handshake, then never reads again (so never pongs).
        key = base64.b64encode(os.urandom(16)).decode()
        silent.sendall((f"GET /ocpp/CP_1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n").encode())
        assert silent.recv(4096).startswith(b"HTTP/1.1 101")
        csms.wait_for_station("CP_1", timeout=WAIT)
        assert gone.wait(WAIT)
    finally:
        silent.close()
        csms.stop()
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def test_a_server_that_does_not_expose_its_socket_answers_501() -> None:
    """wsgiref (and so Django's runserver) has no socket in the environ: a clear refusal, no crash."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    csms = ocpp_sync.CSMS(versions=("1.6",))
    server = make_server("127.0.0.1", 0, CSMSMiddleware(hello, csms), handler_class=Quiet)
    thread = threading.Thread(target=server.handle_request, name="contrib-wsgiref", daemon=True)
    thread.start()
    try:
        status, _, body = raw_upgrade(server.server_port, "/ocpp/CP_1", ["ocpp1.6"])
    finally:
        thread.join(WAIT)
        server.server_close()
    assert status == 501
    assert b"gunicorn" in body
