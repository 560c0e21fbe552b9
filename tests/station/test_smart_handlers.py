"""SmartCharging's handlers without sockets: the ReportChargingProfiles series leaves only after
the answer, and GetCompositeSchedule reports from the next whole second."""
from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest

from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.profiles import ProfileStore
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.smart import SmartCharging

NOW = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)


class RecordingChargePoint:
    """Just the public surface attach() uses: on, after, send, version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.handlers: dict[type, Any] = {}
        self.hooks: dict[type, Any] = {}
        self.sent: list[Any] = []

    def on(self, cls: type) -> Any:
        return lambda fn: self.handlers.setdefault(cls, fn)

    def after(self, cls: type) -> Any:
        return lambda fn: self.hooks.setdefault(cls, fn)

    def send(self, message: Any) -> Any:
        self.sent.append(message)


def install(smart: SmartCharging, m: Any, pid: int) -> None:
    schedule = m.ChargingScheduleType(id=pid, charging_rate_unit="A", start_schedule=NOW,
                                      charging_schedule_period=[m.ChargingSchedulePeriodType(start_period=0, limit=10)])
    profile = m.ChargingProfileType(id=pid, stack_level=pid, charging_profile_purpose="TxDefaultProfile",
                                    charging_profile_kind="Absolute", charging_schedule=[schedule])
    answer = smart.on_set_charging_profile(m.SetChargingProfileRequest(evse_id=1, charging_profile=profile))
    assert answer.status == "Accepted"


@pytest.mark.usefixtures("no_leftover_threads")
@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_reports_go_only_once_the_answer_is_sent(version: str) -> None:
    m = version_module(version)
    reporter = Reporter("ocpp-station-test-reports")
    smart = SmartCharging(ProfileStore(version), clock=lambda: NOW, reporter=reporter)
    cp = RecordingChargePoint(version)
    smart.attach(cp)
    install(smart, m, 1)
    request = m.GetChargingProfilesRequest(request_id=3, charging_profile=m.ChargingProfileCriterionType(
        charging_profile_purpose="TxDefaultProfile"))
    answer = cp.handlers[m.GetChargingProfilesRequest](request)
    assert answer.status == "Accepted"
    assert smart.reporter.join_idle(5) and cp.sent == []
    cp.hooks[m.GetChargingProfilesRequest](request, answer)
    assert smart.reporter.join_idle(5)
    assert [(r.request_id, [p.id for p in r.charging_profile]) for r in cp.sent] == [(3, [1])]
    cp.hooks[m.GetChargingProfilesRequest](request, answer)  # a series is sent once
    assert smart.reporter.join_idle(5) and len(cp.sent) == 1
    reporter.stop(5)


@pytest.mark.usefixtures("no_leftover_threads")
@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_nothing_is_reported_when_there_is_nothing_to_report(version: str) -> None:
    m = version_module(version)
    smart = SmartCharging(ProfileStore(version), clock=lambda: NOW)  # no reporter given: its own
    cp = RecordingChargePoint(version)
    smart.attach(cp)
    request = m.GetChargingProfilesRequest(request_id=4, charging_profile=m.ChargingProfileCriterionType(
        charging_profile_id=[9]))
    answer = cp.handlers[m.GetChargingProfilesRequest](request)
    assert answer.status == "NoProfiles"
    cp.hooks[m.GetChargingProfilesRequest](request, answer)
    assert smart.reporter.join_idle(5) and cp.sent == []
    smart.stop(5)
    assert not any(t.name == "ocpp-station-charging-profile-reports" for t in threading.enumerate())


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_composite_schedule_starts_at_the_next_whole_second(version: str) -> None:
    m = version_module(version)
    moment = NOW + datetime.timedelta(milliseconds=300)
    smart = SmartCharging(ProfileStore(version), max_current=32, clock=lambda: moment)
    smart.start_transaction(1, "7")  # within the second: its Relative TxProfile starts at .3
    if version == "1.6":
        schedule = m.ChargingSchedule(charging_rate_unit="A", charging_schedule_period=[
            m.ChargingSchedulePeriod(start_period=0, limit=6)])
        request = m.SetChargingProfileRequest(connector_id=1, cs_charging_profiles=m.ChargingProfile(
            charging_profile_id=1, stack_level=0, charging_profile_purpose="TxProfile",
            charging_profile_kind="Relative", charging_schedule=schedule, transaction_id=7))
    else:
        schedule = m.ChargingScheduleType(id=1, charging_rate_unit="A", charging_schedule_period=[
            m.ChargingSchedulePeriodType(start_period=0, limit=6)])
        request = m.SetChargingProfileRequest(evse_id=1, charging_profile=m.ChargingProfileType(
            id=1, stack_level=0, charging_profile_purpose="TxProfile", charging_profile_kind="Relative",
            charging_schedule=[schedule], transaction_id="7"))
    assert smart.on_set_charging_profile(request).status == "Accepted"
    if version == "1.6":
        answer = smart.on_get_composite_schedule(m.GetCompositeScheduleRequest(connector_id=1, duration=60))
        start, periods = answer.schedule_start, answer.charging_schedule.charging_schedule_period
    else:
        answer = smart.on_get_composite_schedule(m.GetCompositeScheduleRequest(evse_id=1, duration=60))
        start, periods = answer.schedule.schedule_start, answer.schedule.charging_schedule_period
    assert start == NOW + datetime.timedelta(seconds=1)
    assert [(p.start_period, p.limit) for p in periods] == [(0, 6)]
