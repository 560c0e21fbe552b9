"""A charge point that registers itself (``boot=``): boot on connect, hold back the rest until Accepted."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from support.raw import WAIT

import ocpp_sync
from ocpp_sync.protocol.registration import RegistrationStatus
from ocpp_sync.protocol.versions import version_module

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

NOW = "2026-01-01T12:00:00Z"


def boot_request(version: str) -> Any:
    m = version_module(version)
    payload = {"chargePointVendor": "ACME", "chargePointModel": "X1"} if version == "1.6" else \
        {"chargingStation": {"vendorName": "ACME", "model": "X1"}, "reason": "PowerUp"}
    return ocpp_sync.from_payload(m.REQUESTS["BootNotification"], payload)


def serve(csms: ocpp_sync.CSMS, version: str, statuses: list[tuple[str, int]], seen: list[str]) -> None:
    """Boot answers (status, interval) in turn, the last one repeated; every call recorded."""
    m = version_module(version)

    @csms.on(m.REQUESTS["BootNotification"])
    def on_boot(station: Any, request: Any) -> Any:
        status, interval = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        seen.append(f"Boot:{status}")
        return ocpp_sync.from_payload(m.RESPONSES["BootNotification"],
                                      {"currentTime": NOW, "interval": interval, "status": status})

    @csms.on(m.REQUESTS["Heartbeat"])
    def on_heartbeat(station: Any, request: Any) -> Any:
        seen.append("Heartbeat")
        return m.RESPONSES["Heartbeat"](current_time=datetime.now(timezone.utc))

    @csms.on(m.REQUESTS["Authorize"])
    def on_authorize(station: Any, request: Any) -> Any:
        seen.append("Authorize")
        info = {"idTagInfo": {"status": "Accepted"}} if version == "1.6" else \
            {"idTokenInfo": {"status": "Accepted"}}
        return ocpp_sync.from_payload(m.RESPONSES["Authorize"], info)


def authorize(version: str) -> dict[str, Any]:
    return {"idTag": "TAG"} if version == "1.6" else {"idToken": {"idToken": "TAG", "type": "ISO14443"}}


def test_messages_wait_for_the_accepted_boot_and_heartbeats_follow(version: str) -> None:
    csms = ocpp_sync.CSMS(versions=(version,), unknown_stations="Pending")
    seen: list[str] = []
    serve(csms, version, [("Pending", 1), ("Accepted", 1)], seen)
    csms.start()
    cp = ocpp_sync.ChargePoint("CP_BOOT", f"ws://127.0.0.1:{csms.port}/ocpp", version=version,
                               boot=boot_request(version), timeout=WAIT)
    try:
        cp.connect()
        # Sent at once by the application, delivered only once the CSMS has accepted the boot.
        assert cp.call("Authorize", authorize(version)) is not None
        assert seen[:3] == ["Boot:Pending", "Boot:Accepted", "Authorize"]
        station = csms.wait_for_station("CP_BOOT", WAIT)
        assert station.registration_status is RegistrationStatus.ACCEPTED
        station.expect(version_module(version).REQUESTS["Heartbeat"], timeout=WAIT)  # after 1 s quiet
    finally:
        cp.close()
        csms.stop()


def test_a_trigger_boots_a_pending_charge_point_at_once(version: str) -> None:
    csms = ocpp_sync.CSMS(versions=(version,))
    seen: list[str] = []
    serve(csms, version, [("Pending", 3600), ("Accepted", 3600)], seen)
    pending = threading.Event()
    csms.after(version_module(version).REQUESTS["BootNotification"])(
        lambda station, request, response: pending.set())
    csms.start()
    m = version_module(version)
    cp = ocpp_sync.ChargePoint("CP_TRIG", f"ws://127.0.0.1:{csms.port}/ocpp", version=version,
                               boot=boot_request(version), timeout=WAIT)
    try:
        cp.connect()
        assert pending.wait(WAIT)
        station = csms.wait_for_station("CP_TRIG", WAIT)
        answer = station.send(m.REQUESTS["TriggerMessage"](requested_message="BootNotification"))
        assert getattr(answer.status, "value", answer.status) == "Accepted"
        cp.call("Authorize", authorize(version))   # waits for the triggered boot's Accepted
        assert seen == ["Boot:Pending", "Boot:Accepted", "Authorize"]
        # Once Accepted, a trigger for the boot is refused (as the 1.6 errata advise).
        again = station.send(m.REQUESTS["TriggerMessage"](requested_message="BootNotification"))
        assert getattr(again.status, "value", again.status) == "Rejected"
    finally:
        cp.close()
        csms.stop()


def test_boot_must_be_a_boot_notification() -> None:
    with pytest.raises(ValueError, match="BootNotificationRequest"):
        ocpp_sync.ChargePoint("CP_X", "ws://127.0.0.1:1/ocpp", boot=version_module("1.6").REQUESTS["Heartbeat"]())


def transaction_message(version: str) -> Any:
    m = version_module(version)
    if version == "1.6":
        return m.StartTransactionRequest(connector_id=1, id_tag="TAG", meter_start=0,
                                         timestamp=datetime.now(timezone.utc))
    return ocpp_sync.from_payload(m.REQUESTS["TransactionEvent"], {
        "eventType": "Started", "timestamp": NOW, "triggerReason": "Authorized", "seqNo": 0,
        "transactionInfo": {"transactionId": "T1"}})


def test_queued_transaction_messages_flow_only_after_the_accepted_boot(version: str) -> None:
    csms = ocpp_sync.CSMS(versions=(version,))
    seen: list[str] = []
    serve(csms, version, [("Pending", 3600), ("Accepted", 3600)], seen)
    m = version_module(version)
    action = "StartTransaction" if version == "1.6" else "TransactionEvent"

    @csms.on(m.REQUESTS[action])
    def on_transaction(station: Any, request: Any) -> Any:
        seen.append(action)
        payload = {"idTagInfo": {"status": "Accepted"}, "transactionId": 1} if version == "1.6" else {}
        return ocpp_sync.from_payload(m.RESPONSES[action], payload)

    pending = threading.Event()
    csms.after(m.REQUESTS["BootNotification"])(lambda station, request, response: pending.set())
    csms.start()
    cp = ocpp_sync.ChargePoint("CP_QUEUE", f"ws://127.0.0.1:{csms.port}/ocpp", version=version,
                               boot=boot_request(version), timeout=WAIT)
    try:
        cp.connect()
        assert pending.wait(WAIT)
        handle = cp.send_queued(transaction_message(version))   # kept while Pending
        assert seen == ["Boot:Pending"] and not handle.done()
        station = csms.wait_for_station("CP_QUEUE", WAIT)
        station.send(m.REQUESTS["TriggerMessage"](requested_message="BootNotification"))
        handle.result(WAIT)
        assert seen == ["Boot:Pending", "Boot:Accepted", action]
    finally:
        cp.close()
        csms.stop()
