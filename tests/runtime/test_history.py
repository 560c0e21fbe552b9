"""Message history and expect(): the History unit, then both sides over real loopback sockets."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.runtime.history import History
from ocpp_sync.testing import connected_charge_point, running_csms

WAIT = 10.0


def boot_16() -> Any:
    return v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1")


# -- the History alone ---------------------------------------------------------


def test_entries_pair_answers_with_their_calls() -> None:
    history = History()
    history.frame(">", '[2,"a","Heartbeat",{}]')
    history.frame("<", '[2,"b","Reset",{"type":"Soft"}]')
    history.frame("<", '[3,"a",{"currentTime":"2026-01-01T00:00:00Z"}]')
    history.frame(">", '[4,"b","NotImplemented","no handler",{}]')
    history.frame("<", "not json")
    entries = history.entries()
    assert [(e.direction, e.type, e.action, e.message_id) for e in entries] == [
        ("out", "CALL", "Heartbeat", "a"),
        ("in", "CALL", "Reset", "b"),
        ("in", "CALLRESULT", "Heartbeat", "a"),
        ("out", "CALLERROR", "Reset", "b"),
        ("in", "invalid", None, None),
    ]
    assert entries[0].latency is None and entries[1].latency is None
    assert entries[2].latency is not None and entries[2].latency >= 0
    assert entries[3].payload == {"code": "NotImplemented", "description": "no handler",
                                  "details": {}}
    assert entries[4].payload == "not json"
    assert entries[0].time.tzinfo is timezone.utc


def test_an_answer_with_the_same_id_going_the_same_way_is_not_paired() -> None:
    history = History()
    history.frame(">", '[2,"a","Heartbeat",{}]')
    history.frame(">", '[3,"a",{}]')
    assert history.entries()[1].latency is None
    assert history.entries()[1].action is None


def test_history_is_bounded() -> None:
    history = History(maxlen=3)
    for n in range(10):
        history.frame(">", f'[2,"{n}","Heartbeat",{{}}]')
    assert len(history) == 3
    assert [e.message_id for e in history] == ["7", "8", "9"]
    with pytest.raises(ValueError):
        History(maxlen=0)


def test_the_byte_bound_drops_the_oldest_frames_until_the_texts_fit() -> None:
    frames = [f'[2,"{n}","DataTransfer",{{"vendorId":"{"x" * 20}"}}]' for n in range(10)]
    bound = 3 * len(frames[0]) - 1
    history = History(maxlen=None, max_bytes=bound)
    for text in frames:
        history.frame("<", text)
    kept = [e.message_id for e in history]
    assert kept == ["8", "9"] and history.size == 2 * len(frames[0]) <= bound
    with pytest.raises(ValueError):
        History(max_bytes=0)


def test_both_bounds_hold_together_and_clear_resets_the_count() -> None:
    history = History(maxlen=3, max_bytes=1000)
    for n in range(10):
        history.frame(">", f'[2,"{n}","Heartbeat",{{}}]')
    assert [e.message_id for e in history] == ["7", "8", "9"]
    assert history.size == sum(len(f'[2,"{n}","Heartbeat",{{}}]') for n in (7, 8, 9))
    history.clear()
    assert history.size == 0 and len(history) == 0


def test_a_frame_over_the_byte_bound_is_kept_as_a_placeholder_paired_with_its_answer() -> None:
    history = History(max_bytes=1000)
    big = '[2,"big-1","DataTransfer",{"vendorId":"ACME","data":"' + "x" * 5000 + '"}]'
    history.frame(">", '[2,"small","Heartbeat",{}]')
    history.frame("<", big)
    history.frame(">", '[3,"big-1",{"status":"Accepted"}]')
    history.frame(">", '[3,"huge-answer",{"data":"' + "y" * 5000 + '"}]')
    history.frame("<", "x" * 5000)
    entries = history.entries()
    assert history.size <= 1000 and len(entries) == 5
    call, answer = entries[1], entries[2]
    assert (call.type, call.action, call.message_id, call.payload, call.too_large) == (
        "CALL", "DataTransfer", "big-1", None, len(big))
    assert answer.action == "DataTransfer" and answer.latency is not None and answer.too_large is None
    assert (entries[3].type, entries[3].message_id, entries[3].too_large) == (
        "CALLRESULT", "huge-answer", len('[3,"huge-answer",{"data":"') + 5000 + 3)
    assert (entries[4].type, entries[4].payload, entries[4].too_large) == ("invalid", None, 5000)
    items = history.to_list()
    assert items[1]["too_large"] == len(big) and "too_large" not in items[0]


def test_expect_keeps_requests_within_the_same_bounds_and_says_what_it_dropped() -> None:
    history = History(maxlen=2, max_bytes=100)
    requests = [v16.HeartbeatRequest() for _ in range(3)]
    for request in requests:
        history.handled(request, 40)
    assert history.expect(v16.HeartbeatRequest, timeout=0) is requests[1]   # the oldest went
    history.handled(boot_16(), 101)   # larger than the bound on its own: not kept
    with pytest.raises(TimeoutError, match="2 requests dropped"):
        history.expect(v16.BootNotificationRequest, timeout=0.01)
    for request in requests:
        history.handled(request, 60)   # 60 + 60 > 100: only the newest fits
    assert history.expect(v16.HeartbeatRequest, timeout=0) is requests[2]
    with pytest.raises(TimeoutError, match="5 requests dropped"):
        history.expect(v16.HeartbeatRequest, timeout=0.01)


def test_exports(tmp_path: Path) -> None:
    history = History()
    history.frame(">", '[2,"a","Heartbeat",{}]')
    history.frame("<", '[3,"a",{"currentTime":"2026-01-01T00:00:00Z"}]')
    items = history.to_list()
    assert items[1]["action"] == "Heartbeat" and items[1]["direction"] == "in"
    assert datetime.fromisoformat(items[0]["time"]).tzinfo is not None
    path = tmp_path / "history.jsonl"
    text = history.to_jsonl(path)
    assert path.read_text(encoding="utf-8") == text
    assert [json.loads(line) for line in text.splitlines()] == items
    history.clear()
    assert history.to_list() == [] and history.to_jsonl() == ""


def test_expect_returns_each_request_once_oldest_first_even_if_it_came_before() -> None:
    history = History()
    first, second = boot_16(), v16.BootNotificationRequest(charge_point_vendor="B",
                                                           charge_point_model="Y")
    history.handled(first)
    history.handled(v16.HeartbeatRequest())
    history.handled(second)
    assert history.expect(v16.BootNotificationRequest, timeout=0) is first
    assert history.expect(v16.BootNotificationRequest, timeout=0) is second
    with pytest.raises(TimeoutError, match="BootNotificationRequest"):
        history.expect(v16.BootNotificationRequest, timeout=0.05)
    assert isinstance(history.expect(v16.HeartbeatRequest, timeout=0), v16.HeartbeatRequest)


def test_expect_where_skips_without_consuming() -> None:
    history = History()
    one = v16.StatusNotificationRequest(connector_id=1, error_code="NoError", status="Available")
    two = v16.StatusNotificationRequest(connector_id=2, error_code="NoError", status="Available")
    history.handled(one)
    history.handled(two)
    assert history.expect(v16.StatusNotificationRequest, 0, where=lambda r: r.connector_id == 2) is two
    with pytest.raises(TimeoutError, match="1 unmatched"):
        history.expect(v16.StatusNotificationRequest, 0.01, where=lambda r: r.connector_id == 2)
    assert history.expect(v16.StatusNotificationRequest, 0) is one


def test_expect_wakes_when_a_request_is_answered_and_fails_when_closed() -> None:
    history = History()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(history.expect(v16.HeartbeatRequest, WAIT)))
    waiter.start()
    request = v16.HeartbeatRequest()
    history.handled(request)
    waiter.join(WAIT)
    assert got == [request]
    history.close()
    with pytest.raises(ocpp_sync.ConnectionClosed):
        history.expect(v16.HeartbeatRequest, WAIT)


# -- over real connections -------------------------------------------------------


def test_station_expect_and_both_histories_over_loopback() -> None:
    with running_csms(("1.6",)) as csms, connected_charge_point(csms, "1.6", "CP_H") as (cp, station):
        cp.send(boot_16())
        request = station.expect(v16.BootNotificationRequest, timeout=WAIT)
        assert request.charge_point_vendor == "ACME"
        cp_side, csms_side = cp.history.to_list(), station.history.to_list()
        assert [(e["direction"], e["type"], e["action"]) for e in cp_side] == [
            ("out", "CALL", "BootNotification"), ("in", "CALLRESULT", "BootNotification")]
        assert [(e["direction"], e["type"]) for e in csms_side] == [("in", "CALL"), ("out", "CALLRESULT")]
        assert cp_side[0]["message_id"] == csms_side[0]["message_id"] == csms_side[1]["message_id"]
        assert cp_side[1]["latency"] >= csms_side[1]["latency"] >= 0
        assert csms_side[0]["payload"] == {"chargePointVendor": "ACME", "chargePointModel": "X1"}


def test_cp_expect_returns_after_the_handler_answered() -> None:
    with running_csms(("2.0.1",)) as csms, connected_charge_point(csms, "2.0.1") as (cp, station):
        answered = threading.Event()

        @cp.on(v201.ResetRequest)
        def reset(request: Any) -> Any:
            answered.set()
            return v201.ResetResponse(status="Scheduled")

        future = station.send_async(v201.ResetRequest(type="OnIdle"))
        request = cp.expect(v201.ResetRequest, timeout=WAIT, where=lambda r: r.type == "OnIdle")
        assert answered.is_set()
        assert request.type == "OnIdle"
        assert future.result(WAIT).status == "Scheduled"
        assert cp.history.entries()[-1].type == "CALLRESULT"


def test_requests_refused_before_a_handler_never_reach_expect() -> None:
    with running_csms(("1.6",), accept_all=False) as csms, \
            connected_charge_point(csms, "1.6") as (cp, station):
        with pytest.raises(ocpp_sync.CallError) as info:
            cp.send(v16.HeartbeatRequest())
        assert info.value.code == "NotSupported"
        with pytest.raises(TimeoutError):
            station.expect(v16.HeartbeatRequest, timeout=0.1)
        assert [e.type for e in station.history] == ["CALL", "CALLERROR"]


def test_station_expect_fails_once_the_station_is_gone() -> None:
    with running_csms(("1.6",)) as csms:
        with connected_charge_point(csms, "1.6") as (cp, station):
            pass
        with pytest.raises(ocpp_sync.ConnectionClosed):
            station.expect(v16.HeartbeatRequest, timeout=WAIT)


def test_history_size_bounds_station_and_charge_point_histories() -> None:
    with running_csms(("1.6",), history_size=2) as csms, \
            connected_charge_point(csms, "1.6", history_size=3) as (cp, station):
        for _ in range(3):
            cp.send(v16.HeartbeatRequest())
        assert len(station.history) == 2 and len(cp.history) == 3
        assert station.history.maxlen == 2


def test_history_bytes_bounds_a_station_that_sends_big_messages() -> None:
    big = v16.DataTransferRequest(vendor_id="ACME", data="x" * 200_000)
    with running_csms(("1.6",), history_bytes=10_000) as csms, \
            connected_charge_point(csms, "1.6", history_bytes=50_000) as (cp, station):
        for _ in range(3):
            cp.send(big)
        assert station.history.max_bytes == 10_000 and station.history.size <= 10_000
        assert cp.history.size <= 50_000
        calls = [e for e in station.history if e.type == "CALL"]
        assert len(calls) == 3 and all(e.action == "DataTransfer" and e.too_large for e in calls)
        with pytest.raises(TimeoutError, match="3 requests dropped"):
            station.expect(v16.DataTransferRequest, timeout=0.01)


# -- csms.on_request ----------------------------------------------------------------


def test_on_request_sees_every_handled_request_in_order_before_its_handler() -> None:
    order: list[str] = []
    with running_csms(("1.6",)) as csms:
        @csms.on_request
        def observe(station: Any, request: Any) -> None:
            order.append(f"observe {type(request).__name__} from {station.id}")

        @csms.on(v16.HeartbeatRequest)
        def heartbeat(station: Any, request: Any) -> Any:
            order.append("handler")
            return v16.HeartbeatResponse(current_time=datetime.now(timezone.utc))

        with connected_charge_point(csms, "1.6", "CP_OBS") as (cp, station):
            cp.send(boot_16())
            cp.send(v16.HeartbeatRequest())
    assert order == ["observe BootNotificationRequest from CP_OBS",
                     "observe HeartbeatRequest from CP_OBS", "handler"]


def test_an_on_request_callback_that_raises_fails_the_call_and_skips_the_handler() -> None:
    handled: list[Any] = []
    with running_csms(("1.6",)) as csms:
        @csms.on_request
        def refuse(station: Any, request: Any) -> None:
            raise ocpp_sync.OCPPError("not now", code="GenericError")

        @csms.on(v16.HeartbeatRequest)
        def heartbeat(station: Any, request: Any) -> Any:
            handled.append(request)
            return v16.HeartbeatResponse(current_time=datetime.now(timezone.utc))

        with connected_charge_point(csms, "1.6") as (cp, station):
            with pytest.raises(ocpp_sync.CallError) as info:
                cp.send(v16.HeartbeatRequest())
    assert info.value.code == "GenericError"
    assert handled == []


def test_a_2_1_send_reaches_expect_and_the_history_unanswered() -> None:
    from ocpp_sync import v21

    with running_csms(("2.1",), accept_all=False) as csms:
        @csms.on(v21.NotifyPeriodicEventStreamRequest)
        def stream(station: Any, request: Any) -> None:
            return None

        with connected_charge_point(csms, "2.1") as (cp, station):
            cp.send(v21.NotifyPeriodicEventStreamRequest(
                id=7, pending=0, basetime=datetime.now(timezone.utc),
                data=[v21.StreamDataElementType(t=0.5, v="1")]))
            request = station.expect(v21.NotifyPeriodicEventStreamRequest, timeout=WAIT)
            assert request.id == 7
            assert [(e.direction, e.type, e.action) for e in station.history] == [
                ("in", "SEND", "NotifyPeriodicEventStream")]
            assert [e.type for e in cp.history] == ["SEND"]
