"""Smart charging through a real CSMS on loopback: what the CSMS sends, what it gets back."""
from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from support.raw import WAIT

from ocpp_sync.csms.csms import Station
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.profiles import ProfileStore
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.smart import SmartCharging
from ocpp_sync.testing import connected_charge_point, running_csms

NOW = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(params=["1.6", "2.0.1", "2.1"])
def linked(request: pytest.FixtureRequest) -> Iterator[tuple[SmartCharging, Station, Any]]:
    version = request.param
    reporter = Reporter("ocpp-station-test-reports")
    smart = SmartCharging(ProfileStore(version, evse_count=2, max_stack_level=16), clock=lambda: NOW, reporter=reporter)
    m = version_module(version)
    with running_csms((version,), accept_all=False, timeout=WAIT) as csms, \
            connected_charge_point(csms, version, timeout=WAIT) as (cp, station):
        if version != "1.6":
            csms.on(m.ReportChargingProfilesRequest)(lambda _s, _r: m.ReportChargingProfilesResponse())
        smart.attach(cp)
        yield smart, station, m
        reporter.stop(WAIT)


def set_request(m: Any, pid: int, evse: int, purpose: str, limits: list[tuple[int, float]],
                level: int = 0, tx: Any = None, kind: str = "Absolute") -> Any:
    start = None if kind == "Relative" else NOW
    if m.VERSION == "1.6":
        purpose = {"ChargingStationMaxProfile": "ChargePointMaxProfile"}.get(purpose, purpose)
        schedule = m.ChargingSchedule(charging_rate_unit="A", start_schedule=start, charging_schedule_period=[
            m.ChargingSchedulePeriod(start_period=s, limit=lim) for s, lim in limits])
        return m.SetChargingProfileRequest(connector_id=evse, cs_charging_profiles=m.ChargingProfile(
            charging_profile_id=pid, stack_level=level, charging_profile_purpose=purpose,
            charging_profile_kind=kind, charging_schedule=schedule, transaction_id=tx))
    schedule = m.ChargingScheduleType(id=pid, charging_rate_unit="A", start_schedule=start,
                                      charging_schedule_period=[
                                          m.ChargingSchedulePeriodType(start_period=s, limit=lim)
                                          for s, lim in limits])
    return m.SetChargingProfileRequest(evse_id=evse, charging_profile=m.ChargingProfileType(
        id=pid, stack_level=level, charging_profile_purpose=purpose, charging_profile_kind=kind,
        charging_schedule=[schedule], transaction_id=None if tx is None else str(tx)))


def composite(m: Any, station: Station, evse: int, duration: int, unit: str = "A") -> Any:
    if m.VERSION == "1.6":
        reply = station.send(m.GetCompositeScheduleRequest(connector_id=evse, duration=duration,
                                                           charging_rate_unit=unit))
        return reply.status, reply.charging_schedule
    reply = station.send(m.GetCompositeScheduleRequest(evse_id=evse, duration=duration, charging_rate_unit=unit))
    return reply.status, reply.schedule


@pytest.mark.usefixtures("no_leftover_threads")
def test_profiles_set_over_the_wire_make_the_composite_schedule(linked: tuple[SmartCharging, Station, Any]) -> None:
    smart, station, m = linked
    assert station.send(set_request(m, 1, 0, "ChargingStationMaxProfile", [(0, 20)])).status == "Accepted"
    assert station.send(set_request(m, 2, 1, "TxDefaultProfile", [(0, 32), (600, 10)])).status == "Accepted"
    smart.start_transaction(1, 7, NOW)
    assert station.send(set_request(m, 3, 1, "TxProfile", [(0, 6)], tx=7, kind="Relative")).status == "Accepted"
    assert station.send(set_request(m, 4, 1, "TxProfile", [(0, 6)], tx=8)).status == "Rejected"
    status, schedule = composite(m, station, 1, 900)
    assert status == "Accepted" and schedule.duration == 900
    assert [(p.start_period, p.limit) for p in schedule.charging_schedule_period] == [(0, 6)]
    smart.end_transaction(7)
    status, schedule = composite(m, station, 1, 900, unit="W")
    assert [(p.start_period, p.limit) for p in schedule.charging_schedule_period] == [(0, 13800), (600, 6900)]
    status, schedule = composite(m, station, 2, 60)
    assert [(p.start_period, p.limit) for p in schedule.charging_schedule_period] == [(0, 20)]
    assert composite(m, station, 3, 60)[0] == "Rejected"
    assert smart.limit_now(1) == 20


@pytest.mark.usefixtures("no_leftover_threads")
def test_clear_charging_profile_answers_accepted_then_unknown(linked: tuple[SmartCharging, Station, Any]) -> None:
    smart, station, m = linked
    station.send(set_request(m, 2, 1, "TxDefaultProfile", [(0, 10)], level=1))
    if m.VERSION == "1.6":
        clear = m.ClearChargingProfileRequest(connector_id=1, stack_level=1)
    else:
        clear = m.ClearChargingProfileRequest(charging_profile_criteria=m.ClearChargingProfileType(
            evse_id=1, stack_level=1))
    assert station.send(clear).status == "Accepted"
    assert station.send(clear).status == "Unknown"
    assert smart.store.profiles() == []
    # nothing limits the EVSE now: the hardware maximum (32 A) fills the schedule
    _, schedule = composite(m, station, 1, 60)
    assert [(p.start_period, p.limit) for p in schedule.charging_schedule_period] == [(0, 32)]


@pytest.mark.usefixtures("no_leftover_threads")
def test_get_charging_profiles_is_answered_with_reports_in_chunks(linked: tuple[SmartCharging, Station, Any]) -> None:
    smart, station, m = linked
    if m.VERSION == "1.6":
        pytest.skip("GetChargingProfiles is a 2.x message")
    for pid in range(1, 11):
        assert station.send(set_request(m, pid, 1, "TxDefaultProfile", [(0, pid)], level=pid)).status == "Accepted"
    station.send(set_request(m, 20, 0, "ChargingStationMaxProfile", [(0, 40)]))
    criterion = m.ChargingProfileCriterionType(charging_profile_purpose="TxDefaultProfile")
    reply = station.send(m.GetChargingProfilesRequest(request_id=5, evse_id=1, charging_profile=criterion))
    assert reply.status == "Accepted"
    first = station.expect(m.ReportChargingProfilesRequest, timeout=WAIT)
    second = station.expect(m.ReportChargingProfilesRequest, timeout=WAIT)
    assert (first.request_id, first.tbc, len(first.charging_profile)) == (5, True, 8)
    assert (second.tbc, len(second.charging_profile)) == (None, 2)
    assert sorted(p.id for p in first.charging_profile + second.charging_profile) == list(range(1, 11))
    none = m.ChargingProfileCriterionType(charging_profile_id=[99])
    assert station.send(m.GetChargingProfilesRequest(request_id=6, charging_profile=none)).status == "NoProfiles"
