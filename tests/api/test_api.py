"""The public ChargePoint / CSMS / Station API, end to end over loopback, for each version."""
from __future__ import annotations

import socket
import threading
from datetime import datetime, timezone

import pytest
import simple_websocket
import websocket
from support.raw import WAIT

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.websocket import HandshakeError

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def now() -> datetime:
    return datetime.now(timezone.utc)


def boot_request(m):
    if m.VERSION == "1.6":
        return m.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1")
    return m.BootNotificationRequest(
        charging_station=m.ChargingStationType(vendor_name="ACME", model="X1"), reason="PowerUp")


def reset_request(m):
    return m.ResetRequest(type="Soft" if m.VERSION == "1.6" else "Immediate")


def serve_basics(csms, m):
    @csms.on(m.BootNotificationRequest)
    def boot(station, request):
        return m.BootNotificationResponse(current_time=now(), interval=300, status="Accepted")

    @csms.on(m.HeartbeatRequest)
    def heartbeat(station, request):
        return m.HeartbeatResponse(current_time=now())


def test_issue_example(csms, m, version):
    serve_basics(csms, m)
    cp = ocpp_sync.ChargePoint("CP_1", f"ws://127.0.0.1:{csms.port}/ocpp", version=version)
    resets = []

    @cp.on(m.ResetRequest)
    def reset(request):
        resets.append(request)
        return m.ResetResponse(status="Accepted")

    @cp.on(m.ClearCacheRequest)
    def clear_cache(request):
        return m.ClearCacheResponse(status="Rejected")

    cp.connect()
    resp = cp.send(boot_request(m))
    assert isinstance(resp, m.BootNotificationResponse) and resp.status == "Accepted"
    assert resp.interval == 300
    fut = cp.send_async(m.HeartbeatRequest())
    assert isinstance(fut.result(WAIT), m.HeartbeatResponse)
    raw = cp.call("Heartbeat", {})
    assert set(raw) == {"currentTime"} and raw["currentTime"].endswith("Z")

    station = csms.wait_for_station("CP_1", timeout=WAIT)
    assert isinstance(station, ocpp_sync.Station)
    assert (station.id, station.version) == ("CP_1", version)
    assert csms.stations == {"CP_1": station}
    assert station.send(reset_request(m)).status == "Accepted"
    assert resets[0].type == ("Soft" if version == "1.6" else "Immediate")
    assert station.send_async(m.ClearCacheRequest()).result(WAIT).status == "Rejected"
    assert station.call("ClearCache", {}) == {"status": "Rejected"}

    cp.close()
    cp.close()
    with pytest.raises(ocpp_sync.ConnectionClosed):
        cp.send(m.HeartbeatRequest())
    with pytest.raises(ocpp_sync.ConnectionClosed):
        station.send(reset_request(m))


def test_context_manager_connects_and_closes(csms, m, version):
    serve_basics(csms, m)
    with ocpp_sync.ChargePoint("CP_2", f"ws://127.0.0.1:{csms.port}", version=version) as cp:
        assert cp.connected
        assert cp.send(m.HeartbeatRequest()).current_time
    assert not cp.connected
    with pytest.raises(ocpp_sync.ConnectionClosed):
        cp.send(m.HeartbeatRequest())


def test_callbacks_and_station_registry(csms, m, version):
    serve_basics(csms, m)
    connected, disconnected = [], []
    gone = threading.Event()

    @csms.on_connect
    def greet(station):
        # Runs before the station's first call is handled, and may call it.
        connected.append(station.send(m.ClearCacheRequest()).status)

    def bye(station):
        disconnected.append(station.id)
        gone.set()

    csms.on_disconnect = bye
    cp = ocpp_sync.ChargePoint("CP_3", f"ws://127.0.0.1:{csms.port}", version=version)
    cp.on(m.ClearCacheRequest)(lambda request: m.ClearCacheResponse(status="Accepted"))
    with cp:
        cp.send(boot_request(m))
        assert connected == ["Accepted"]
        assert "CP_3" in csms.stations
    assert gone.wait(WAIT)
    assert disconnected == ["CP_3"]
    assert csms.stations == {}


def test_wait_for_station_times_out(csms):
    with pytest.raises(TimeoutError):
        csms.wait_for_station("nobody", timeout=0.1)


def test_station_id_is_percent_encoded_and_decoded(m, version):
    """Ids outside the OCPP identity rules need strict_station_ids=False; they then round-trip."""
    csms = ocpp_sync.CSMS(versions=(version,), timeout=WAIT, strict_station_ids=False)
    csms.start("127.0.0.1", 0)
    try:
        serve_basics(csms, m)
        with ocpp_sync.ChargePoint("CP/1 ü#?", f"ws://127.0.0.1:{csms.port}/ocpp/", version=version):
            assert csms.wait_for_station("CP/1 ü#?", timeout=WAIT).id == "CP/1 ü#?"
    finally:
        csms.stop()


def test_same_id_reconnecting_replaces_the_old_connection(csms, m, version):
    serve_basics(csms, m)
    gone = []
    closed = threading.Event()

    def on_disconnect(station):
        gone.append(station)
        closed.set()

    csms.on_disconnect = on_disconnect
    url = f"ws://127.0.0.1:{csms.port}"
    with ocpp_sync.ChargePoint("TWIN", url, version=version) as first:
        old = csms.wait_for_station("TWIN", WAIT)
        with ocpp_sync.ChargePoint("TWIN", url, version=version) as second:
            assert closed.wait(WAIT)
            assert gone == [old]
            assert csms.stations["TWIN"] is not old
            assert second.send(m.HeartbeatRequest()).current_time
            with pytest.raises(ocpp_sync.ConnectionClosed):
                first.send(m.HeartbeatRequest())


def test_version_not_served_is_refused_for_good(version, m):
    """OCPP-J: a 101 without Sec-WebSocket-Protocol, then a close; the station stops trying."""
    others = tuple(v for v in ("1.6", "2.0.1", "2.1") if v != version)
    csms = ocpp_sync.CSMS(versions=others)
    csms.start()
    try:
        cp = ocpp_sync.ChargePoint("CP_4", f"ws://127.0.0.1:{csms.port}", version=version)
        with pytest.raises(HandshakeError) as err:
            cp.connect()
        assert err.value.permanent and err.value.status is None
        assert isinstance(err.value, ConnectionError)
    finally:
        csms.stop()


def test_one_csms_serves_every_version_at_once():
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1", "2.1"))
    modules = [ocpp_sync.v16, ocpp_sync.v201, ocpp_sync.v21]
    for m in modules:
        serve_basics(csms, m)
    csms.start()
    try:
        cps = [ocpp_sync.ChargePoint(f"CP_{m.VERSION}", f"ws://127.0.0.1:{csms.port}",
                                     version=m.VERSION) for m in modules]
        for cp, m in zip(cps, modules, strict=True):
            cp.connect()
            assert cp.send(boot_request(m)).status == "Accepted"
        assert {s.id: s.version for s in csms.stations.values()} == {
            "CP_1.6": "1.6", "CP_2.0.1": "2.0.1", "CP_2.1": "2.1"}
        for cp in cps:
            cp.close()
    finally:
        csms.stop()


def test_eight_threads_send_through_the_real_csms(csms, m, version):
    @csms.on(m.DataTransferRequest)
    def echo(station, request):
        return m.DataTransferResponse(status="Accepted", data=request.data)

    results = {}
    with ocpp_sync.ChargePoint("CP_8", f"ws://127.0.0.1:{csms.port}", version=version) as cp:
        def worker(n):
            for k in range(10):
                results[n, k] = cp.send(m.DataTransferRequest(vendor_id="v", data=f"{n}-{k}")).data

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert results == {(n, k): f"{n}-{k}" for n in range(8) for k in range(10)}


def test_handlers_on_both_sides_call_their_peer_back(csms, m, version):
    serve_basics(csms, m)

    @csms.on(m.DataTransferRequest)
    def data_transfer(station, request):
        # The CSMS asks the station something while the station waits for this answer.
        status = station.send(m.ClearCacheRequest()).status
        return m.DataTransferResponse(status="Accepted", data="yes" if status == "Accepted" else "no")

    with ocpp_sync.ChargePoint("CP_5", f"ws://127.0.0.1:{csms.port}", version=version) as cp:
        heartbeats = []

        @cp.on(m.ClearCacheRequest)
        def clear_cache(request):
            if request_from_main:
                heartbeats.append(cp.send(m.HeartbeatRequest()))
            return m.ClearCacheResponse(status="Accepted")

        request_from_main = False
        assert cp.send(m.DataTransferRequest(vendor_id="v")).data == "yes"
        # And the station's handler calls the CSMS during a call the CSMS made.
        request_from_main = True
        station = csms.wait_for_station("CP_5", WAIT)
        assert station.send(m.ClearCacheRequest()).status == "Accepted"
        assert len(heartbeats) == 1


def test_stop_fails_pending_calls_of_connected_stations(csms, m, version):
    release = threading.Event()

    @csms.on(m.HeartbeatRequest)
    def slow(station, request):
        release.wait(WAIT)
        return m.HeartbeatResponse(current_time=now())

    with ocpp_sync.ChargePoint("CP_6", f"ws://127.0.0.1:{csms.port}", version=version,
                               timeout=60) as cp:
        future = cp.send_async(m.HeartbeatRequest())
        csms.wait_for_station("CP_6", WAIT)
        # stop() waits (boundedly) for the stuck handler; the station learns at once.
        stopper = threading.Thread(target=csms.stop)
        stopper.start()
        with pytest.raises(ocpp_sync.ConnectionClosed):
            future.result(WAIT)
        release.set()
        stopper.join(WAIT)
    assert csms.stations == {}


def test_serve_forever_until_stop(version, m):
    csms = ocpp_sync.CSMS(versions=(version,))
    serve_basics(csms, m)
    port = socket.create_server(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    runner = threading.Thread(target=csms.serve_forever, args=("127.0.0.1", free))
    runner.start()
    try:
        cp = ocpp_sync.ChargePoint("CP_7", f"ws://127.0.0.1:{free}", version=version)
        for _ in range(100):  # the listener binds in the runner thread; retry until it has
            try:
                cp.connect()
                break
            except HandshakeError:
                runner.join(0.05)
        with cp:
            assert cp.send(m.HeartbeatRequest()).current_time
    finally:
        csms.stop()
        runner.join(WAIT)
    assert not runner.is_alive()


def test_thread_count_back_to_baseline_after_50_cycles(csms, m, version):
    serve_basics(csms, m)
    baseline = set(threading.enumerate())
    url = f"ws://127.0.0.1:{csms.port}"
    for n in range(50):
        cp = ocpp_sync.ChargePoint(f"CYCLE_{n}", url, version=version)
        cp.connect()
        cp.send(m.HeartbeatRequest())
        cp.close()
    # The server side of each connection ends once it has seen the close; give it its bound.
    for thread in set(threading.enumerate()) - baseline:
        thread.join(WAIT)
    assert set(threading.enumerate()) == baseline
    assert csms.stations == {}


def test_reconnect_after_close(csms, m, version):
    serve_basics(csms, m)
    cp = ocpp_sync.ChargePoint("CP_R", f"ws://127.0.0.1:{csms.port}", version=version)
    for _ in range(3):
        cp.connect()
        with pytest.raises(RuntimeError):
            cp.connect()
        assert cp.send(m.HeartbeatRequest()).current_time
        cp.close()


def test_handle_serves_an_already_accepted_simple_websocket(version, m):
    """What a flask-sock route would do: accept the socket itself, then hand it to the CSMS."""
    csms = ocpp_sync.CSMS(versions=(version,))
    serve_basics(csms, m)
    listener = socket.create_server(("127.0.0.1", 0))
    served = []

    def web_app():
        conn, addr = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        environ = {"werkzeug.socket": conn, "REQUEST_METHOD": "GET",
                   "PATH_INFO": lines[0].split(" ")[1]}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        ws = simple_websocket.Server.accept(environ, subprotocols=[f"ocpp{version}"])
        station_id = environ["PATH_INFO"].rsplit("/", 1)[1]
        csms.handle(ws, station_id, remote_address=f"{addr[0]}:{addr[1]}")
        served.append(station_id)

    app = threading.Thread(target=web_app)
    app.start()
    try:
        with ocpp_sync.ChargePoint("CP_F", f"ws://127.0.0.1:{listener.getsockname()[1]}/app",
                                   version=version) as cp:
            assert cp.send(boot_request(m)).status == "Accepted"
            station = csms.wait_for_station("CP_F", WAIT)
            assert station.version == version
        app.join(WAIT)
        assert served == ["CP_F"]
    finally:
        listener.close()
        csms.stop()
        app.join(WAIT)


def test_registration_errors():
    cp = ocpp_sync.ChargePoint("CP_X", "ws://127.0.0.1:1", version="1.6")
    with pytest.raises(ValueError):
        cp.on(v201.ResetRequest)  # another version
    with pytest.raises(ValueError):
        cp.on(v16.ResetResponse)  # a response
    with pytest.raises(ValueError):
        cp.on(v16.BootNotificationRequest)  # the CSMS answers that, never the station
    with pytest.raises(TypeError):
        cp.on(dict)
    csms = ocpp_sync.CSMS(versions=("2.0.1",))
    with pytest.raises(ValueError):
        csms.on(v16.BootNotificationRequest)
    with pytest.raises(ValueError):
        csms.on(v201.ResetRequest)
    with pytest.raises(ValueError):
        ocpp_sync.ChargePoint("CP_X", "ws://127.0.0.1:1", version="1.5")
    with pytest.raises(ValueError):
        ocpp_sync.CSMS(versions=("3.0",))
    with pytest.raises(ocpp_sync.ConnectionClosed):
        cp.send(v16.HeartbeatRequest())


def test_refused_sends_raise_before_anything_is_written(raw_server, m, version):
    cp = ocpp_sync.ChargePoint("CP_V", raw_server.url, version=version)
    with cp:
        peer = raw_server.accept()
        other = ocpp_sync.v16 if version != "1.6" else ocpp_sync.v201
        with pytest.raises(ValueError):
            cp.send(other.HeartbeatRequest())
        with pytest.raises(ValueError):
            cp.send(m.HeartbeatResponse(current_time=now()))
        with pytest.raises(ValueError):
            cp.send(m.ClearCacheRequest())  # the CSMS sends that one
        with pytest.raises(TypeError):
            cp.send({"action": "Heartbeat"})
        with pytest.raises(ocpp_sync.ValidationError):
            cp.send(m.DataTransferRequest(vendor_id="x" * 256))
        with pytest.raises(ocpp_sync.ValidationError):
            cp.call("DataTransfer", {"vendorId": 5})
        with pytest.raises(ValueError):
            cp.call("NoSuchAction", {})
        # The first frame the peer sees is the valid call made after all of that.
        future = cp.send_async(m.HeartbeatRequest())
        call = peer.receive()
        assert call[2] == "Heartbeat"
        peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}])
        assert future.result(WAIT).current_time.year == 2030


def test_lenient_charge_point_accepts_unknown_response_fields(raw_server, m, version):
    for lenient in (False, True):
        with ocpp_sync.ChargePoint(f"CP_L{lenient}", raw_server.url, version=version,
                                   lenient=lenient) as cp:
            peer = raw_server.accept()
            future = cp.send_async(m.HeartbeatRequest())
            call = peer.receive()
            peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z", "vendorExtra": 1}])
            if lenient:
                assert future.result(WAIT).current_time.year == 2030
            else:
                with pytest.raises(ocpp_sync.ValidationError):
                    future.result(WAIT)


def test_connect_to_nothing_raises_handshake_error():
    unused = socket.create_server(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    cp = ocpp_sync.ChargePoint("CP_N", f"ws://127.0.0.1:{port}", connect_timeout=WAIT)
    with pytest.raises(HandshakeError) as err:
        cp.connect()
    assert err.value.status is None
    assert not cp.connected


def test_handle_refuses_a_version_it_does_not_serve(csms, version):
    other = "2.0.1" if version == "1.6" else "1.6"
    listener = socket.create_server(("127.0.0.1", 0))
    client = {}

    def connect_client():
        client["ws"] = websocket.create_connection(
            f"ws://127.0.0.1:{listener.getsockname()[1]}/X", subprotocols=[f"ocpp{other}"],
            timeout=WAIT)

    connector = threading.Thread(target=connect_client)
    connector.start()
    conn, _ = listener.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    environ = {"werkzeug.socket": conn, "REQUEST_METHOD": "GET", "PATH_INFO": "/X"}
    for line in head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    ws = simple_websocket.Server.accept(environ, subprotocols=[f"ocpp{other}"])
    connector.join(WAIT)
    # The CSMS does not speak that version: it closes the websocket (1002) and returns.
    handler = threading.Thread(target=csms.handle, args=(ws, "X"))
    handler.start()
    try:
        opcode, data = client["ws"].recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1002
        client["ws"].close()
        handler.join(WAIT)
        assert not handler.is_alive()
        assert csms.stations == {}
    finally:
        client["ws"].close()
        listener.close()
        handler.join(WAIT)


def test_server_options_reach_the_listener(version, m):
    from ocpp_sync.websocket import HandshakeError as Refusal

    def check_request(request):
        if request.headers.get("Authorization") != "Basic b2s=":
            raise Refusal("who are you?", status=401)

    csms = ocpp_sync.CSMS(versions=(version,))
    serve_basics(csms, m)
    csms.start("127.0.0.1", 0, check_request=check_request)
    try:
        url = f"ws://127.0.0.1:{csms.port}"
        with pytest.raises(HandshakeError) as err:
            ocpp_sync.ChargePoint("CP_A", url, version=version).connect()
        assert err.value.status == 401
        with ocpp_sync.ChargePoint("CP_A", url, version=version,
                                   headers={"Authorization": "Basic b2s="}) as cp:
            assert cp.send(m.HeartbeatRequest()).current_time
    finally:
        csms.stop()


def test_wait_for_station_times_out_with_the_librarys_timeout_error() -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",))
    with pytest.raises(ocpp_sync.StationTimeout) as caught:
        csms.wait_for_station("NOBODY", timeout=0.01)
    assert isinstance(caught.value, ocpp_sync.CallTimeout) and isinstance(caught.value, TimeoutError)
