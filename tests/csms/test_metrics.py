"""Metrics: the counts of a known exchange, on loopback and scraped over HTTP in Prometheus's format."""
from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from support.raw import WAIT, RawClient, wait_until

from ocpp_sync import ChargePoint, v16, v201
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.errors import CallError, CallTimeout, HandshakeError, OCPPError
from ocpp_sync.metrics import ANSWERED, BUCKETS, CLOSED, IN, OTHER, OUT, SEND, TIMEOUT, UNKNOWN
from ocpp_sync.runtime.metrics import MetricsTotals, clock
from ocpp_sync.security import Reason, SecurityEvent
from ocpp_sync.testing import connected_charge_point, csms_url, running_csms

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

SLOW = 0.03   # how long the slow handler takes: its latency lands in a bucket at or above this


# -- the counter layer, without sockets ------------------------------------------------------

def test_each_role_counts_into_its_own_tally_and_a_snapshot_adds_them_up() -> None:
    totals = MetricsTotals()
    metrics = totals.attach("2.0.1")
    metrics.answered_in("Heartbeat", '[3,"1",{"currentTime":"x"}]', clock())
    metrics.answered_in("Authorize", '[4,"2","FormationViolation","bad",{}]', clock())
    metrics.refused_in("NoSuchAction", '[4,"3","NotImplemented","",{}]', clock())
    metrics.answer_out("Reset", None, clock())
    metrics.answer_out("Reset", CallError("WeirdCode"), clock())
    metrics.answer_out("Reset", OCPPError("unreadable"), clock())
    metrics.other(OUT, "Reset", TIMEOUT)
    metrics.bad_message()
    assert metrics.handling.entries and metrics.reading.entries   # two writers, two tallies

    calls = totals.figures()[0]
    assert dict(calls.calls) == {
        (IN, "Heartbeat", ANSWERED): 1,
        (IN, "Authorize", "FormatViolation"): 1,   # counted in the 2.x spelling
        (IN, UNKNOWN, "NotImplemented"): 1,        # a made-up action is no label of its own
        (OUT, "Reset", ANSWERED): 1, (OUT, "Reset", OTHER): 1, (OUT, "Reset", "invalid"): 1,
        (OUT, "Reset", TIMEOUT): 1}
    assert calls.bad_messages == 1
    assert calls.latency[(OUT, "Reset")].count == 3   # every answer is timed, a timeout is not
    assert calls.total(direction=OUT) == 4 and calls.total(action="Heartbeat") == 1


def test_an_ended_connection_is_folded_into_the_totals_once() -> None:
    totals = MetricsTotals()
    first, second = totals.attach("1.6"), totals.attach("1.6")
    first.other(OUT, "Reset", CLOSED)
    second.other(OUT, "Reset", CLOSED)
    first.close()
    first.close()
    first.other(OUT, "Reset", CLOSED)   # after its end: not counted
    calls, _, _, connects, disconnects = totals.figures()
    assert calls.calls == {(OUT, "Reset", CLOSED): 2}
    assert (connects, disconnects) == (2, 1)


def test_latency_lands_in_the_bucket_of_its_bound() -> None:
    totals = MetricsTotals()
    metrics = totals.attach("1.6")
    for seconds in (0.0005, 0.001, 0.003, 100.0):
        metrics.answer_out("Reset", None, clock() - seconds)
    (histogram,) = totals.figures()[0].latency.values()
    assert histogram.buckets == BUCKETS
    assert histogram.counts[0] == 1 and histogram.counts[1] == 1   # 0.5 ms; 1 ms just over
    assert histogram.counts[2] == 1 and histogram.counts[-1] == 1  # 3 ms; 100 s over the top
    assert histogram.cumulative[-1] == histogram.count == 4
    assert histogram.sum == pytest.approx(100.0045, abs=0.01)


def test_security_events_count_refusals_by_reason_and_status_and_closes_apart() -> None:
    totals = MetricsTotals()
    heard: list[SecurityEvent] = []
    hook = totals.counting(heard.append)
    hook(SecurityEvent(Reason.UNKNOWN_STATION, "127.0.0.1:1", "CP", status=404))
    hook(SecurityEvent(Reason.TLS_FAILED, "127.0.0.1:2"))
    hook(SecurityEvent(Reason.BAD_MESSAGES, "127.0.0.1:3", "CP", close_code=1008))
    _, refusals, closes, _, _ = totals.figures()
    assert refusals == {("unknown_station", 404): 1, ("tls_failed", None): 1}
    assert closes == {"bad_messages": 1}
    assert len(heard) == 3   # the application's hook still hears every event


# -- a known exchange on loopback ------------------------------------------------------------

@pytest.fixture
def exchange() -> Iterator[tuple[CSMS, ChargePoint]]:
    """A 2.0.1 CSMS and charge point after a known sequence of calls both ways."""
    with running_csms(("2.0.1",), accept_all=False, timeout=WAIT) as csms:
        released = threading.Event()
        csms.on(v201.HeartbeatRequest)(lambda _s, _r: v201.HeartbeatResponse(current_time="2026-01-01T00:00:00Z"))

        @csms.on(v201.AuthorizeRequest)
        def slow(_station: Any, _request: Any) -> Any:
            released.wait(SLOW)   # nothing sets it: a bounded pause of SLOW seconds
            return v201.AuthorizeResponse(id_token_info=v201.IdTokenInfoType(status="Accepted"))

        @csms.on(v201.DataTransferRequest)
        def refuse(_station: Any, _request: Any) -> Any:
            raise OCPPError("no", code="PropertyConstraintViolation")

        with connected_charge_point(csms, "2.0.1", timeout=WAIT) as (cp, station):
            hold = threading.Event()
            cp.on(v201.ClearCacheRequest)(lambda _r: v201.ClearCacheResponse(status="Accepted"))

            @cp.on(v201.ResetRequest)
            def stuck(_request: Any) -> Any:
                hold.wait(WAIT)
                return v201.ResetResponse(status="Accepted")

            for _ in range(3):
                cp.send(v201.HeartbeatRequest())
            cp.send(v201.AuthorizeRequest(id_token=v201.IdTokenType(id_token="T", type="ISO14443")))
            with pytest.raises(CallError):
                cp.send(v201.DataTransferRequest(vendor_id="V"))
            with pytest.raises(CallError):   # the CSMS has no handler: NotSupported
                cp.send(v201.StatusNotificationRequest(timestamp="2026-01-01T00:00:00Z",
                                                       connector_status="Available", evse_id=1,
                                                       connector_id=1))
            station.send(v201.ClearCacheRequest())
            with pytest.raises(CallError):   # the charge point has no handler
                station.send(v201.UnlockConnectorRequest(evse_id=1, connector_id=1))
            with pytest.raises(CallTimeout):
                station.send(v201.ResetRequest(type="Immediate"), timeout=0.1)
            hold.set()
            yield csms, cp


def test_the_csms_counts_calls_by_direction_action_and_result(exchange: tuple[CSMS, ChargePoint]) -> None:
    csms, _ = exchange
    snapshot = csms.metrics()
    assert dict(snapshot.calls) == {
        (IN, "Heartbeat", ANSWERED): 3,
        (IN, "Authorize", ANSWERED): 1,
        (IN, "DataTransfer", "PropertyConstraintViolation"): 1,
        (IN, "StatusNotification", "NotSupported"): 1,
        (OUT, "ClearCache", ANSWERED): 1,
        (OUT, "UnlockConnector", "NotSupported"): 1,
        (OUT, "Reset", TIMEOUT): 1}
    assert (snapshot.stations_connected, snapshot.connects, snapshot.disconnects) == (1, 1, 0)
    assert snapshot.bad_messages == 0 and not snapshot.refusals


def test_latency_buckets_count_every_answered_call(exchange: tuple[CSMS, ChargePoint]) -> None:
    csms, _ = exchange
    latency = csms.metrics().latency
    assert latency[(IN, "Heartbeat")].count == 3
    assert latency[(OUT, "ClearCache")].count == 1
    assert (OUT, "Reset") not in latency   # a timeout has no answer to time
    slow = latency[(IN, "Authorize")]
    below = sum(n for bound, n in zip(slow.buckets, slow.counts[:-1], strict=True) if bound < SLOW)
    assert slow.count == 1 and below == 0 and slow.sum >= SLOW * 0.9


def test_the_charge_point_counts_the_same_calls_from_its_side(exchange: tuple[CSMS, ChargePoint]) -> None:
    _, cp = exchange
    snapshot = cp.metrics()
    assert snapshot.calls[(OUT, "Heartbeat", ANSWERED)] == 3
    assert snapshot.calls[(OUT, "StatusNotification", "NotSupported")] == 1
    assert snapshot.calls[(IN, "ClearCache", ANSWERED)] == 1
    assert snapshot.calls[(IN, "UnlockConnector", "NotSupported")] == 1
    assert snapshot.latency[(OUT, "Authorize")].sum >= SLOW * 0.9
    assert (snapshot.connected, snapshot.connects, snapshot.queued) == (True, 1, 0)


def test_a_bad_message_and_a_made_up_action_are_counted() -> None:
    with running_csms(("1.6",), timeout=WAIT) as csms:
        raw = RawClient(csms.port, "CP_RAW", "1.6")
        try:
            assert raw.exchange("this is not json")[0] == 4
            assert raw.exchange([2, "1", "MadeUp", {}])[2] == "NotImplemented"
        finally:
            raw.close()
        assert wait_until(lambda: csms.metrics().disconnects == 1)
        snapshot = csms.metrics()
    assert snapshot.bad_messages == 1
    assert dict(snapshot.calls) == {(IN, UNKNOWN, "NotImplemented"): 1}


def test_refusals_are_counted_by_reason_and_status() -> None:
    with running_csms(("1.6",), timeout=WAIT, known_stations={"CP_A"}, on_duplicate="refuse") as csms:
        with pytest.raises(HandshakeError):
            ChargePoint("CP_B", csms_url(csms), reconnect=False, timeout=WAIT).connect()
        with connected_charge_point(csms, "1.6", "CP_A"):
            with pytest.raises(HandshakeError):
                ChargePoint("CP_A", csms_url(csms), reconnect=False, timeout=WAIT).connect()
        snapshot = csms.metrics()
    assert snapshot.refusals == {("unknown_station", 404): 1, ("refused", 409): 1}
    assert snapshot.connects == 1


def test_the_charge_point_reports_its_offline_queue_depth(tmp_path: Any) -> None:
    cp = ChargePoint("CP_Q", "ws://127.0.0.1:9/ocpp", reconnect=False)
    try:
        cp.send_queued(v16.StopTransactionRequest(meter_stop=1, timestamp="2026-01-01T00:00:00Z",
                                                  transaction_id=7))
        snapshot = cp.metrics()
        assert (snapshot.queued, snapshot.connected, snapshot.connects) == (1, False, 0)
    finally:
        cp.close()


# -- Prometheus ------------------------------------------------------------------------------

def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a Prometheus text exposition fetched over HTTP, by (name, labels)."""
    parser = pytest.importorskip("prometheus_client.parser")
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def calls_label(direction: str, action: str, result: str) -> tuple[tuple[str, str], ...]:
    return (("action", action), ("direction", direction), ("result", result))


def test_the_figures_are_scraped_from_a_port_of_their_own(exchange: tuple[CSMS, ChargePoint]) -> None:
    pytest.importorskip("prometheus_client")
    csms, _ = exchange
    samples = scrape(f"http://127.0.0.1:{csms.serve_metrics()}/metrics")
    assert samples[("ocpp_csms_calls_total", calls_label(IN, "Heartbeat", ANSWERED))] == 3
    assert samples[("ocpp_csms_calls_total", calls_label(OUT, "Reset", TIMEOUT))] == 1
    timing = (("action", "Authorize"), ("direction", IN))
    assert samples[("ocpp_csms_call_duration_seconds_count", timing)] == 1
    assert samples[("ocpp_csms_call_duration_seconds_bucket", (*timing, ("le", "0.025")))] == 0
    assert samples[("ocpp_csms_call_duration_seconds_bucket", (*timing, ("le", "+Inf")))] == 1
    assert samples[("ocpp_csms_stations_connected", ())] == 1
    assert samples[("ocpp_csms_connects_total", ())] == 1


def test_the_metrics_thread_is_gone_after_stop() -> None:
    pytest.importorskip("prometheus_client")
    with running_csms(("1.6",), timeout=WAIT) as csms:
        port = csms.serve_metrics()
        with pytest.raises(RuntimeError):
            csms.serve_metrics()
        assert [t for t in threading.enumerate() if t.name == f"ocpp-metrics-{port}"]
    assert not [t for t in threading.enumerate() if t.name.startswith("ocpp-metrics-")]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=WAIT)


def test_the_figures_are_scraped_from_a_flask_mount() -> None:
    pytest.importorskip("prometheus_client")
    pytest.importorskip("flask")
    from flask import Flask
    from werkzeug.serving import make_server

    from ocpp_sync.contrib.flask import mount, mount_metrics

    csms = CSMS(versions=("1.6",), timeout=WAIT)
    app = Flask(__name__)
    mount(app, csms, "/ocpp/<station_id>", known_stations={"CP_1"})
    mount_metrics(app, csms)
    app.add_url_rule("/", "home", lambda: "home")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="test-flask-metrics", daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with pytest.raises(HandshakeError):   # refused by the mount, before the upgrade
            ChargePoint("CP_2", f"ws://127.0.0.1:{server.port}/ocpp", reconnect=False, timeout=WAIT).connect()
        samples = scrape(f"{url}/metrics")
        with urllib.request.urlopen(f"{url}/", timeout=WAIT) as response:
            assert response.read() == b"home"   # the app's own routes still answer
    finally:
        server.shutdown()
        thread.join(WAIT)
        csms.stop()
    assert samples[("ocpp_csms_refusals_total", (("reason", "unknown_station"), ("status", "404")))] == 1


def test_charge_points_are_exported_by_station() -> None:
    prometheus = pytest.importorskip("prometheus_client")
    from ocpp_sync.runtime.prometheus import registry_for

    cp = ChargePoint("CP_P", "ws://127.0.0.1:9/ocpp", reconnect=False)
    try:
        cp.send_queued(v16.StopTransactionRequest(meter_stop=1, timestamp="2026-01-01T00:00:00Z",
                                                  transaction_id=7))
        text = prometheus.generate_latest(registry_for(cp)).decode()
    finally:
        cp.close()
    assert 'ocpp_charge_point_queued_messages{station="CP_P"} 1.0' in text
    assert 'ocpp_charge_point_connected{station="CP_P"} 0.0' in text


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.delitem(sys.modules, "ocpp_sync.runtime.prometheus", raising=False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"ocpp_sync\[metrics\]"):
        importlib.import_module("ocpp_sync.runtime.prometheus")
    with running_csms(("1.6",), timeout=WAIT) as csms, pytest.raises(ImportError, match="metrics"):
        csms.serve_metrics()


def test_a_2_1_send_is_counted_on_both_sides_unanswered() -> None:
    from ocpp_sync import v21

    arrived = threading.Event()
    with running_csms(("2.1",), accept_all=False, timeout=WAIT) as csms:
        csms.on(v21.NotifyPeriodicEventStreamRequest)(lambda _s, _r: arrived.set())
        with connected_charge_point(csms, "2.1", timeout=WAIT) as (cp, _):
            cp.send(v21.NotifyPeriodicEventStreamRequest(
                id=1, pending=0, basetime="2026-01-01T00:00:00Z",
                data=[v21.StreamDataElementType(t=0.5, v="1")]))
            assert arrived.wait(WAIT)
            assert wait_until(lambda: csms.metrics().total(result=SEND) == 1)
            assert dict(cp.metrics().calls) == {(OUT, "NotifyPeriodicEventStream", SEND): 1}
        assert dict(csms.metrics().calls) == {(IN, "NotifyPeriodicEventStream", SEND): 1}
        assert not csms.metrics().latency   # nothing answered, nothing timed
