"""Negative injection: send_raw on both sides, History.wait_for_frame, the context's unchecked call."""
from __future__ import annotations

import json
import threading
import time

import pytest
from support.raw import WAIT

from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.runtime.history import History
from ocpp_sync.testing import connected_charge_point, running_csms


def _answer(history: History, message_id: str) -> dict[str, object]:
    entry = history.wait_for_frame(lambda e: e.direction == "in" and e.message_id == message_id,
                                   WAIT)
    return {"type": entry.type, "payload": entry.payload}


def test_a_charge_point_sends_raw_frames_before_its_boot_and_sees_the_answers() -> None:
    m = version_module("2.0.1")
    boot = m.BootNotificationRequest(reason="PowerUp", charging_station=m.ChargingStationType(
        model="M", vendor_name="V"))
    with running_csms(("2.0.1",), unknown_stations="Pending") as csms, \
            connected_charge_point(csms, "2.0.1", boot=boot) as (cp, _station):
        cp.send_raw('[2,"raw-1","StatusNotification",{"evseId":1}]')   # breaks the schema
        cp.send_raw('[2,"raw-1","StatusNotification",{"evseId":1}]')   # the same id again
        first, second = (e for e in cp.history.entries() if e.message_id == "raw-1"
                         and e.direction == "out")
        assert first.payload == second.payload == {"evseId": 1}
        answer = _answer(cp.history, "raw-1")
        assert answer["type"] == "CALLERROR"
        assert answer["payload"]["code"] in ("OccurrenceConstraintViolation",  # type: ignore[index]
                                             "SecurityError")


def test_a_csms_station_sends_raw_frames_to_a_charge_point() -> None:
    with running_csms(("2.0.1",)) as csms, \
            connected_charge_point(csms, "2.0.1") as (cp, station):
        m = version_module("2.0.1")
        cp.on(m.ResetRequest)(lambda request: m.ResetResponse(status="Accepted"))
        station.send_raw(json.dumps([2, "raw-2", "Reset", {"type": "Sometime"}]))
        answer = _answer(station.history, "raw-2")
    assert answer["type"] == "CALLERROR"
    assert answer["payload"]["code"] == "PropertyConstraintViolation"  # type: ignore[index]


def test_send_raw_needs_a_connection_and_wait_for_frame_is_bounded() -> None:
    with running_csms(("1.6",)) as csms, connected_charge_point(csms, "1.6") as (cp, _station):
        with pytest.raises(TimeoutError):
            cp.history.wait_for_frame(lambda e: e.message_id == "never", 0.05)
    with pytest.raises(ConnectionClosed):
        cp.send_raw("[]")


def test_wait_for_frame_wakes_up_when_the_frame_comes_not_at_its_timeout() -> None:
    with running_csms(("1.6",)) as csms, connected_charge_point(csms, "1.6") as (cp, _station):
        sender = threading.Timer(0.05, cp.send_raw, args=('[2,"late-1","Heartbeat",{}]',))
        sender.name = "test-late-sender"
        started = time.monotonic()
        sender.start()
        entry = cp.history.wait_for_frame(
            lambda e: e.direction == "in" and e.message_id == "late-1", WAIT)
        sender.join(WAIT)
    assert entry.type == "CALLRESULT"
    assert time.monotonic() - started < WAIT / 2


def test_the_context_reuses_a_message_id_and_sends_any_text() -> None:
    from targets import FAST

    from ocpp_sync.conformance import CsmsUnderTest
    from ocpp_sync.conformance.case import Case
    from ocpp_sync.conformance.context import Context
    from ocpp_sync.conformance.prompts import no_prompt
    from ocpp_sync.conformance.sides import KitStation

    unregistered = Case("KIT_X_99_CSMS", "a scratch case", ("2.0.1",), "csms", ("inject",),
                        lambda ctx: None)
    with running_csms(("2.0.1",)) as csms:
        target = CsmsUnderTest(f"ws://127.0.0.1:{csms.port}/ocpp", "INJECT_CP")
        side = KitStation(target, FAST, None)
        try:
            ctx = Context(unregistered, "2.0.1", FAST, no_prompt, side, target.station_id)
            with ctx.step("inject"):
                first = ctx.unchecked_call("Heartbeat", {}, message_id="dup-1")
                second = ctx.unchecked_call("Heartbeat", {}, message_id="dup-1")
                sent = ctx.raw("not json at all", None)
        finally:
            side.close()
    assert (first.type, second.type) == ("CALLRESULT", "CALLRESULT")
    assert first.message_id == second.message_id == "dup-1"
    assert sent.type == "invalid" and sent.payload == "not json at all"
    assert sent.direction == "to the CSMS under test"
