"""The device model through a real CSMS on loopback, 2.0.1 and 2.1: what the CSMS sends,
what it gets back, and the NotifyReport series it receives."""
from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.raw import WAIT

from ocpp_sync.csms.csms import Station
from ocpp_sync.errors import CallError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station import Change, DeviceModel, DeviceModelHandlers, Reporter, VariableId
from ocpp_sync.station.reports import frame_size
from ocpp_sync.testing import connected_charge_point, running_csms

NOW = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)
Linked = tuple[DeviceModelHandlers, Station, Any]


@pytest.fixture(params=["2.0.1", "2.1"])
def linked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Linked]:
    version = request.param
    reporter = Reporter("ocpp-station-test-reports")
    model = DeviceModel.standard(version, evses={1: 2, 2: 1}, path=tmp_path / "model.json")
    handlers = DeviceModelHandlers(model, clock=lambda: NOW, reporter=reporter)
    m = version_module(version)
    with running_csms((version,), accept_all=False, timeout=WAIT) as csms, \
            connected_charge_point(csms, version, timeout=WAIT) as (cp, station):
        csms.on(m.NotifyReportRequest)(lambda _s, _r: m.NotifyReportResponse())
        handlers.attach(cp)
        yield handlers, station, m
        reporter.stop(WAIT)


def component(m: Any, name: str, evse: int | None = None, connector: int | None = None) -> Any:
    return m.ComponentType(name=name, evse=None if evse is None else m.EVSEType(id=evse, connector_id=connector))


def get_item(m: Any, name: str, variable: str, instance: str | None = None, attribute: str | None = None,
             evse: int | None = None, connector: int | None = None) -> Any:
    return m.GetVariableDataType(component=component(m, name, evse, connector),
                                 variable=m.VariableType(name=variable, instance=instance), attribute_type=attribute)


def set_item(m: Any, name: str, variable: str, value: str, instance: str | None = None) -> Any:
    return m.SetVariableDataType(component=component(m, name),
                                 variable=m.VariableType(name=variable, instance=instance), attribute_value=value)


@pytest.mark.usefixtures("no_leftover_threads")
def test_get_variables_over_the_wire(linked: Linked) -> None:
    _, station, m = linked
    reply = station.send(m.GetVariablesRequest(get_variable_data=[
        get_item(m, "OCPPCommCtrlr", "MessageTimeout", "Default"),
        get_item(m, "Connector", "ConnectorType", evse=1, connector=2),
        get_item(m, "Connector", "ConnectorType", evse=2, connector=2),
        get_item(m, "EVSE", "Power", attribute="MaxSet", evse=2),
        get_item(m, "EVSE", "Power", attribute="Target", evse=2),
        get_item(m, "SecurityCtrlr", "BasicAuthPassword"),
        get_item(m, "SecurityCtrlr", "NoSuch")]))
    assert [(r.attribute_status, r.attribute_value) for r in reply.get_variable_result] == [
        ("Accepted", "30"), ("Accepted", "cType2"), ("UnknownComponent", None), ("Accepted", "22000"),
        ("NotSupportedAttributeType", None), ("Rejected", None), ("UnknownVariable", None)]
    assert reply.get_variable_result[3].attribute_type == "MaxSet"


@pytest.mark.usefixtures("no_leftover_threads")
def test_set_variables_over_the_wire_then_read_back_and_persisted(linked: Linked) -> None:
    handlers, station, m = linked
    changes: list[Change] = []
    handlers.on_change(changes.append)
    reply = station.send(m.SetVariablesRequest(set_variable_data=[
        set_item(m, "OCPPCommCtrlr", "HeartbeatInterval", "90"),
        set_item(m, "DeviceDataCtrlr", "ItemsPerMessage", "1", "GetVariables"),
        set_item(m, "TxCtrlr", "TxStopPoint", "EVConnected,Sometimes"),
        set_item(m, "NoSuchCtrlr", "X", "1")]))
    assert [r.attribute_status for r in reply.set_variable_result] == [
        "Accepted", "Rejected", "Rejected", "UnknownComponent"]
    assert [c.new for c in changes] == ["90"]
    got = station.send(m.GetVariablesRequest(get_variable_data=[get_item(m, "OCPPCommCtrlr", "HeartbeatInterval")]))
    assert got.get_variable_result[0].attribute_value == "90"
    again = DeviceModel.standard(handlers.version, evses={1: 2, 2: 1}, path=handlers.model.path)
    assert again.value("OCPPCommCtrlr", "HeartbeatInterval") == "90"


@pytest.mark.usefixtures("no_leftover_threads")
def test_more_items_than_allowed_is_answered_with_a_call_error(linked: Linked) -> None:
    handlers, station, m = linked
    handlers.model.set("DeviceDataCtrlr", VariableId("ItemsPerMessage", "GetVariables"), "2")
    with pytest.raises(CallError) as caught:
        station.send(m.GetVariablesRequest(get_variable_data=[get_item(m, "AuthCtrlr", "Enabled")] * 3))
    assert caught.value.code == "OccurrenceConstraintViolation"
    ok = station.send(m.GetVariablesRequest(get_variable_data=[get_item(m, "AuthCtrlr", "Enabled")] * 2))
    assert len(ok.get_variable_result) == 2


@pytest.mark.usefixtures("no_leftover_threads")
def test_get_base_report_is_answered_then_reported_in_chunks(linked: Linked) -> None:
    handlers, station, m = linked
    model = handlers.model
    model.set("DeviceDataCtrlr", VariableId("ItemsPerMessage", "GetReport"), "7")
    model.set("DeviceDataCtrlr", VariableId("BytesPerMessage", "GetReport"), "3000")
    reply = station.send(m.GetBaseReportRequest(request_id=11, report_base="FullInventory"))
    assert reply.status == "Accepted"
    reports = [station.expect(m.NotifyReportRequest, timeout=WAIT)]
    while reports[-1].tbc:
        reports.append(station.expect(m.NotifyReportRequest, timeout=WAIT))
    assert [r.seq_no for r in reports] == list(range(len(reports)))
    assert all(r.request_id == 11 and r.generated_at == NOW for r in reports)
    assert all(len(r.report_data) <= 7 and frame_size("NotifyReport", r) <= 3000 for r in reports)
    assert any(len(r.report_data) < 7 for r in reports[:-1])  # the byte limit cut some
    reported = [(d.component.name, d.component.evse and (d.component.evse.id, d.component.evse.connector_id),
                 d.variable.name, d.variable.instance) for r in reports for d in r.report_data]
    assert len(reported) == len(model.variables()) == len(set(reported))
    assert ("Connector", (2, 1), "ConnectorType", None) in reported


@pytest.mark.usefixtures("no_leftover_threads")
def test_get_report_with_criteria_and_an_empty_result(linked: Linked) -> None:
    handlers, station, m = linked
    handlers.model.set("ChargingStation", "Problem", "true")
    reply = station.send(m.GetReportRequest(request_id=12, component_criteria=["Problem"]))
    assert reply.status == "Accepted"
    report = station.expect(m.NotifyReportRequest, timeout=WAIT)
    assert (report.seq_no, report.tbc) == (0, None)
    assert {d.component.name for d in report.report_data} == {"ChargingStation"}
    wanted = m.ComponentVariableType(component=component(m, "EVSE", 9))
    assert station.send(m.GetReportRequest(request_id=13, component_variable=[wanted])).status == "EmptyResultSet"
    summary = station.send(m.GetBaseReportRequest(request_id=14, report_base="SummaryInventory"))
    assert summary.status == "Accepted"
    report = station.expect(m.NotifyReportRequest, timeout=WAIT)
    assert report.request_id == 14 and {d.variable.name for d in report.report_data} <= {
        "AvailabilityState", "Available", "Problem"}
