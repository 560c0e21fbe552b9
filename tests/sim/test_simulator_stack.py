"""The simulator on the station stack, through our CSMS on loopback: its configuration and device
model answered from the stores, and its charging power held under the CSMS's charging profiles."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.sim import CentralSystem, Command, StationSimulator

WAIT = 10.0
FULL = 11000 * 60 // 3600          # Wh per 60 s sample at the simulator's 11 kW
SIX_AMPS = 6 * 230 * 3 * 60 // 3600  # Wh per 60 s sample at 6 A on three phases of 230 V


@pytest.fixture(params=["1.6", "2.0.1"])
def linked(request: pytest.FixtureRequest) -> Iterator[tuple[StationSimulator, Any, CentralSystem, Any]]:
    version = str(request.param)
    server = ocpp_sync.CSMS(versions=(version,), timeout=WAIT)
    central = CentralSystem(heartbeat_interval=90)
    central.install(server)
    server.start("127.0.0.1", 0)
    sim = StationSimulator(f"ws://127.0.0.1:{server.port}", "STACKED", version, timeout=WAIT)
    try:
        sim.connect()
        sim.boot()
        yield sim, server.wait_for_station("STACKED", timeout=WAIT), central, version_module(version)
    finally:
        sim.close()
        server.stop()


def tx_profile(m: Any, purpose: str, transaction_id: Any, amps: float) -> Any:
    """A profile limiting connector / EVSE 1 to ``amps`` from now on."""
    start = datetime.now(timezone.utc)
    if m.VERSION == "1.6":
        schedule = m.ChargingSchedule(charging_rate_unit="A", start_schedule=start, charging_schedule_period=[
            m.ChargingSchedulePeriod(start_period=0, limit=amps)])
        return m.SetChargingProfileRequest(connector_id=1, cs_charging_profiles=m.ChargingProfile(
            charging_profile_id=5, stack_level=1, charging_profile_purpose=purpose, charging_profile_kind="Absolute",
            charging_schedule=schedule, transaction_id=transaction_id if purpose == "TxProfile" else None))
    schedule = m.ChargingScheduleType(id=1, charging_rate_unit="A", start_schedule=start, charging_schedule_period=[
        m.ChargingSchedulePeriodType(start_period=0, limit=amps)])
    return m.SetChargingProfileRequest(evse_id=1, charging_profile=m.ChargingProfileType(
        id=5, stack_level=1, charging_profile_purpose=purpose, charging_profile_kind="Absolute",
        charging_schedule=[schedule], transaction_id=transaction_id if purpose == "TxProfile" else None))


def clear_profile(m: Any) -> Any:
    if m.VERSION == "1.6":
        return m.ClearChargingProfileRequest(id=5)
    return m.ClearChargingProfileRequest(charging_profile_id=5)


def energy_per_sample(sim: StationSimulator, central: CentralSystem, transaction_id: Any, samples: int) -> list[int]:
    """What the CSMS reads: the energy each of ``samples`` meter values added."""
    added = []
    for _ in range(samples):
        before = central.transaction(sim.id, transaction_id)["meter_last"]
        sim.meter_values()
        added.append(central.transaction(sim.id, transaction_id)["meter_last"] - before)
    return added


@pytest.mark.parametrize("purpose", ["TxProfile", "TxDefaultProfile"])
def test_the_energy_rate_follows_the_csms_limit(linked: tuple[StationSimulator, Any, CentralSystem, Any],
                                               purpose: str) -> None:
    sim, station, central, m = linked
    transaction_id = sim.start_transaction()
    assert energy_per_sample(sim, central, transaction_id, 2) == [FULL, FULL]
    assert station.send(tx_profile(m, purpose, transaction_id, 6)).status == "Accepted"
    assert sim.power_now() == 6 * 230 * 3
    assert energy_per_sample(sim, central, transaction_id, 2) == [SIX_AMPS, SIX_AMPS]
    if m.VERSION == "1.6":
        composite = station.send(m.GetCompositeScheduleRequest(connector_id=1, duration=60)).charging_schedule
    else:
        composite = station.send(m.GetCompositeScheduleRequest(evse_id=1, duration=60)).schedule
    assert [p.limit for p in composite.charging_schedule_period] == [6]
    assert station.send(clear_profile(m)).status == "Accepted"
    assert energy_per_sample(sim, central, transaction_id, 1) == [FULL]
    sim.stop_transaction()
    if purpose == "TxProfile":  # bound to the transaction: gone with it
        assert sim.stack.smart.store.profiles() == []


def test_a_limit_above_what_the_car_draws_changes_nothing(
        linked: tuple[StationSimulator, Any, CentralSystem, Any]) -> None:
    sim, station, central, m = linked
    transaction_id = sim.start_transaction()
    assert station.send(tx_profile(m, "TxProfile", transaction_id, 32)).status == "Accepted"
    assert energy_per_sample(sim, central, transaction_id, 1) == [FULL]


def test_the_configuration_is_the_stores(linked: tuple[StationSimulator, Any, CentralSystem, Any]) -> None:
    sim, station, central, m = linked
    assert sim.setting("HeartbeatInterval") == "90"  # what the boot answer said
    transaction_id = sim.start_transaction()
    if m.VERSION == "1.6":
        every = station.send(m.GetConfigurationRequest())
        keys = {k.key: k.value for k in every.configuration_key}
        assert keys["SupportedFeatureProfiles"] == "Core,SmartCharging,RemoteTrigger"
        assert (keys["ChargeProfileMaxStackLevel"], keys["Model"]) == ("8", "Simulator")
        statuses = [station.send(m.ChangeConfigurationRequest(key=key, value=value)).status for key, value in [
            ("HeartbeatInterval", "soon"), ("Model", "X"), ("MeterValueSampleInterval", "30"),
            ("HeartbeatInterval", "120")]]
        assert statuses == ["Rejected", "Rejected", "Accepted", "Accepted"]
    else:
        def item(component: str, variable: str) -> dict[str, Any]:
            return {"component": m.ComponentType(name=component), "variable": m.VariableType(name=variable)}
        got = station.send(m.GetVariablesRequest(get_variable_data=[
            m.GetVariableDataType(**item("ChargingStation", "Model")),
            m.GetVariableDataType(**item("SmartChargingCtrlr", "ProfileStackLevel")),
            m.GetVariableDataType(**item("AuthCtrlr", "AuthorizeRemoteStart"))]))
        assert [r.attribute_value for r in got.get_variable_result] == ["Simulator", "8", "false"]
        changed = station.send(m.SetVariablesRequest(set_variable_data=[
            m.SetVariableDataType(attribute_value="-1", **item("OCPPCommCtrlr", "HeartbeatInterval")),
            m.SetVariableDataType(attribute_value="30", **item("SampledDataCtrlr", "TxUpdatedInterval"))]))
        assert [r.attribute_status for r in changed.set_variable_result] == ["Rejected", "Accepted"]
        changed = station.send(m.SetVariablesRequest(set_variable_data=[
            m.SetVariableDataType(attribute_value="120", **item("OCPPCommCtrlr", "HeartbeatInterval"))]))
        assert changed.set_variable_result[0].attribute_status == "Accepted"
    assert sim.sample_seconds == 30
    assert energy_per_sample(sim, central, transaction_id, 1) == [11000 * 30 // 3600]
    assert sim.setting("HeartbeatInterval") == "120"
    assert sim.wait_for_command(WAIT) == Command("heartbeat_interval", 120)  # the heartbeat timer restarts


def test_the_simulator_reports_its_device_model_and_profiles(
        linked: tuple[StationSimulator, Any, CentralSystem, Any]) -> None:
    sim, station, central, m = linked
    if m.VERSION == "1.6":
        pytest.skip("reports are 2.x messages")
    assert station.send(m.GetBaseReportRequest(request_id=1, report_base="FullInventory")).status == "Accepted"
    reports = [station.expect(m.NotifyReportRequest, timeout=WAIT)]
    while reports[-1].tbc:
        reports.append(station.expect(m.NotifyReportRequest, timeout=WAIT))
    reported = {(d.component.name, d.variable.name) for r in reports for d in r.report_data}
    assert {("ChargingStation", "Model"), ("EVSE", "Count"), ("OCPPCommCtrlr", "HeartbeatInterval")} <= reported
    assert len(reported) > 50
    assert station.send(tx_profile(m, "TxDefaultProfile", None, 6)).status == "Accepted"
    sim.start_transaction()
    got = station.send(m.GetVariablesRequest(get_variable_data=[
        m.GetVariableDataType(component=m.ComponentType(name="EVSE", evse=m.EVSEType(id=1)),
                              variable=m.VariableType(name="Power")),
        m.GetVariableDataType(component=m.ComponentType(name="SmartChargingCtrlr"),
                              variable=m.VariableType(name="Entries", instance="ChargingProfiles"))]))
    assert [r.attribute_value for r in got.get_variable_result] == ["4140", "1"]  # what smart charging knows
    criterion = m.ChargingProfileCriterionType(charging_profile_purpose="TxDefaultProfile")
    answer = station.send(m.GetChargingProfilesRequest(request_id=2, charging_profile=criterion))
    assert answer.status == "Accepted"
    report = station.expect(m.ReportChargingProfilesRequest, timeout=WAIT)
    assert (report.request_id, [p.id for p in report.charging_profile]) == (2, [5])
    assert sim.counts[("station", "NotifyReport")] == len(reports)  # sent and reported like any call
