"""The boot rules on loopback, for each version: a CSMS that answers Pending, Rejected, Accepted.

Station calls go as wire payloads (``ChargePoint.call``), so one test body serves
every version.
"""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from support.raw import WAIT

import ocpp_sync
from ocpp_sync import v16
from ocpp_sync.protocol.registration import RegistrationStatus
from ocpp_sync.protocol.versions import version_module

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

NOW = "2026-01-01T12:00:00Z"


def boot(version: str) -> dict[str, Any]:
    if version == "1.6":
        return {"chargePointVendor": "ACME", "chargePointModel": "X1"}
    return {"chargingStation": {"vendorName": "ACME", "model": "X1"}, "reason": "PowerUp"}


def status_notification(version: str) -> dict[str, Any]:
    if version == "1.6":
        return {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    return {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}


def answering_boots(csms: ocpp_sync.CSMS, version: str, statuses: list[str]) -> None:
    """Boot answers taken from ``statuses`` in turn; every station call gets a handler."""
    m = version_module(version)

    @csms.on(m.REQUESTS["BootNotification"])
    def on_boot(station: Any, request: Any) -> Any:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return ocpp_sync.from_payload(m.RESPONSES["BootNotification"],
                                      {"currentTime": NOW, "interval": 1, "status": status})

    @csms.on(m.REQUESTS["StatusNotification"])
    def on_status(station: Any, request: Any) -> Any:
        return m.RESPONSES["StatusNotification"]()

    @csms.on(m.REQUESTS["Heartbeat"])
    def on_heartbeat(station: Any, request: Any) -> Any:
        return m.RESPONSES["Heartbeat"](current_time=datetime.now(timezone.utc))


def url(csms: ocpp_sync.CSMS) -> str:
    return f"ws://127.0.0.1:{csms.port}/ocpp"


def test_a_pending_station_is_answered_security_error_until_accepted(version: str) -> None:
    csms = ocpp_sync.CSMS(versions=(version,))
    answering_boots(csms, version, ["Pending", "Accepted"])
    csms.start()
    try:
        with ocpp_sync.ChargePoint("CP_PEND", url(csms), version=version) as cp:
            assert cp.call("BootNotification", boot(version))["status"] == "Pending"
            station = csms.wait_for_station("CP_PEND", WAIT)
            assert station.registration_status is RegistrationStatus.PENDING
            with pytest.raises(ocpp_sync.CallError) as err:
                cp.call("StatusNotification", status_notification(version))
            assert err.value.code == "SecurityError"
            assert cp.call("BootNotification", boot(version))["status"] == "Accepted"
            assert station.registration_status is RegistrationStatus.ACCEPTED
            assert cp.call("StatusNotification", status_notification(version)) == {}
    finally:
        csms.stop()


def test_an_accepted_station_that_reconnects_without_booting_is_served(version: str) -> None:
    csms = ocpp_sync.CSMS(versions=(version,), unknown_stations="Pending")
    answering_boots(csms, version, ["Accepted"])
    accepted: list[str] = []
    csms.on_accepted = lambda station: accepted.append(station.id)
    csms.start()
    try:
        with ocpp_sync.ChargePoint("CP_BACK", url(csms), version=version) as cp:
            with pytest.raises(ocpp_sync.CallError):   # strict: no boot on record yet
                cp.call("Heartbeat", {})
            cp.call("BootNotification", boot(version))
            assert cp.call("Heartbeat", {})["currentTime"]
        with ocpp_sync.ChargePoint("CP_BACK", url(csms), version=version) as cp:
            # no boot this time: the status belongs to the station
            assert cp.call("Heartbeat", {})["currentTime"]
            assert csms.stations["CP_BACK"].registration_status is RegistrationStatus.ACCEPTED
        assert accepted == ["CP_BACK", "CP_BACK"]   # after the accepted boot, then at the reconnect
    finally:
        csms.stop()


def test_the_status_survives_a_csms_restart_through_the_store(version: str) -> None:
    saved: dict[str, str] = {}

    class Store:
        def load(self, station_id: str) -> str | None:
            return saved.get(station_id)

        def save(self, station_id: str, status: str) -> None:
            saved[station_id] = status

    for statuses, expect_served in ((["Rejected"], False), (["Accepted"], True)):
        first = ocpp_sync.CSMS(versions=(version,), registration_store=Store())
        answering_boots(first, version, statuses)
        first.start()
        try:
            with ocpp_sync.ChargePoint("CP_KEPT", url(first), version=version) as cp:
                cp.call("BootNotification", boot(version))
        finally:
            first.stop()
        assert saved == {"CP_KEPT": statuses[0]}
        second = ocpp_sync.CSMS(versions=(version,), registration_store=Store())
        answering_boots(second, version, ["Accepted"])
        second.start()
        try:
            with ocpp_sync.ChargePoint("CP_KEPT", url(second), version=version) as cp:
                if expect_served:
                    assert cp.call("Heartbeat", {})["currentTime"]
                else:
                    with pytest.raises(ocpp_sync.CallError):
                        cp.call("Heartbeat", {})
        finally:
            second.stop()


def test_a_disallowed_csms_call_is_refused_before_the_wire() -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",))
    answering_boots(csms, "1.6", ["Pending"])
    csms.start()
    try:
        with ocpp_sync.ChargePoint("CP_NOSTART", url(csms), version="1.6") as cp:
            cp.call("BootNotification", boot("1.6"))
            station = csms.wait_for_station("CP_NOSTART", WAIT)
            with pytest.raises(ocpp_sync.NotRegistered, match="Pending"):
                station.send(v16.RemoteStartTransactionRequest(id_tag="TAG"))
            assert not [e for e in station.history.entries() if e.action == "RemoteStartTransaction"]
    finally:
        csms.stop()


def test_registration_can_be_switched_off() -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",), registration=False)
    answering_boots(csms, "1.6", ["Pending"])
    csms.start()
    try:
        with ocpp_sync.ChargePoint("CP_FREE", url(csms), version="1.6") as cp:
            cp.call("BootNotification", boot("1.6"))
            assert cp.call("StatusNotification", status_notification("1.6")) == {}
            assert csms.stations["CP_FREE"].registration_status is RegistrationStatus.UNKNOWN
    finally:
        csms.stop()


def test_an_after_hook_call_reaches_the_station_after_the_answer() -> None:
    """mobilityhouse/ocpp#533: a profile sent from the StartTransaction handler overtook its answer."""
    csms = ocpp_sync.CSMS(versions=("1.6",))
    seen: list[str] = []
    done = threading.Event()

    @csms.on(v16.StartTransactionRequest)
    def start(station: Any, request: Any) -> Any:
        return v16.StartTransactionResponse(transaction_id=7, id_tag_info=v16.IdTagInfo(
            status=v16.AuthorizationStatus.ACCEPTED))

    @csms.after(v16.StartTransactionRequest)
    def limit(station: Any, request: Any, response: Any) -> None:
        seen.append(f"after {response.transaction_id}")
        station.send(v16.ClearCacheRequest())
        done.set()

    csms.start()
    try:
        with ocpp_sync.ChargePoint("CP_ORDER", url(csms), version="1.6") as cp:
            @cp.on(v16.ClearCacheRequest)
            def clear(request: Any) -> Any:
                seen.append("ClearCache")
                return v16.ClearCacheResponse(status=v16.ClearCacheStatus.ACCEPTED)

            answer = cp.send(v16.StartTransactionRequest(
                connector_id=1, id_tag="TAG", meter_start=0, timestamp=datetime.now(timezone.utc)))
            assert answer.transaction_id == 7
            assert done.wait(WAIT)
            frames = [(e.direction, e.type, e.action) for e in cp.history.entries()]
            answer_at = frames.index(("in", "CALLRESULT", "StartTransaction"))
            call_at = frames.index(("in", "CALL", "ClearCache"))
            assert answer_at < call_at
            assert seen == ["after 7", "ClearCache"]
    finally:
        csms.stop()
