"""The boot rules without sockets: what each side may send before the station is Accepted."""
from __future__ import annotations

import pytest

from ocpp_sync.protocol.registration import Registration, RegistrationRefused, RegistrationStatus

ACCEPTED, PENDING, REJECTED, UNKNOWN = (RegistrationStatus.ACCEPTED, RegistrationStatus.PENDING,
                                        RegistrationStatus.REJECTED, RegistrationStatus.UNKNOWN)
VERSIONS = ("1.6", "2.0.1", "2.1")
START = {"1.6": "RemoteStartTransaction", "2.0.1": "RequestStartTransaction", "2.1": "RequestStartTransaction"}
STOP = {"1.6": "RemoteStopTransaction", "2.0.1": "RequestStopTransaction", "2.1": "RequestStopTransaction"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("status", [PENDING, REJECTED])
def test_before_acceptance_the_station_sends_only_its_boot(version: str, status: RegistrationStatus) -> None:
    reg = Registration(version, status)
    reg.check_station_call("BootNotification", {})
    for action in ("StatusNotification", "Heartbeat", "Authorize"):
        with pytest.raises(RegistrationRefused, match=status.value):
            reg.check_station_call(action, {})
    reg.booted("Accepted")
    reg.check_station_call("StatusNotification", {})


@pytest.mark.parametrize("version", VERSIONS)
def test_what_the_csms_asked_for_may_come_while_pending(version: str) -> None:
    reg = Registration(version, PENDING)
    reg.check_csms_call("TriggerMessage", {"requestedMessage": "StatusNotification"})
    reg.check_station_call("StatusNotification", {})          # the one asked for
    with pytest.raises(RegistrationRefused):
        reg.check_station_call("StatusNotification", {})      # a second was not
    reg.check_csms_call("GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"})
    reg.check_station_call("NotifyReport", {"tbc": True})
    reg.check_station_call("NotifyReport", {"tbc": False})    # the report's last part
    with pytest.raises(RegistrationRefused):
        reg.check_station_call("NotifyReport", {})
    reg.check_csms_call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
    reg.check_station_call("SignCertificate", {})


def test_a_csms_asking_in_a_loop_is_remembered_only_so_far() -> None:
    reg = Registration("2.0.1", PENDING)
    for _ in range(1000):
        reg.check_csms_call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    allowed = 0
    while True:
        try:
            reg.check_station_call("Heartbeat", {})
        except RegistrationRefused:
            break
        allowed += 1
    assert allowed == 16


@pytest.mark.parametrize("version", VERSIONS)
def test_the_csms_neither_starts_nor_stops_a_transaction_on_a_pending_station(version: str) -> None:
    reg = Registration(version, PENDING)
    for action in (START[version], STOP[version]):
        with pytest.raises(RegistrationRefused, match="Pending"):
            reg.check_csms_call(action, {})
    reg.check_csms_call("TriggerMessage", {"requestedMessage": "BootNotification"})
    reg.booted("Accepted")
    reg.check_csms_call(START[version], {})


@pytest.mark.parametrize("version", VERSIONS)
def test_the_csms_sends_a_rejected_station_nothing(version: str) -> None:
    reg = Registration(version, REJECTED)
    for action in ("TriggerMessage", "GetVariables" if version != "1.6" else "GetConfiguration", START[version]):
        with pytest.raises(RegistrationRefused, match="Rejected"):
            reg.check_csms_call(action, {})


def test_a_station_without_a_boot_on_record_counts_as_the_policy_says() -> None:
    served = Registration("1.6")
    assert served.status is UNKNOWN and served.effective is ACCEPTED
    served.check_station_call("StatusNotification", {})
    strict = Registration("1.6", unknown_as=PENDING)
    with pytest.raises(RegistrationRefused):
        strict.check_station_call("StatusNotification", {})
    with pytest.raises(ValueError):
        Registration("1.6", unknown_as=UNKNOWN)
