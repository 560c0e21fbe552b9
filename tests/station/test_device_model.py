"""The 2.x device model without sockets: value checks, per-item statuses, persistence,
report selection and NotifyReport chunking, and the handlers called directly."""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station import (
    Attribute,
    Change,
    Characteristics,
    ComponentId,
    DeviceModel,
    DeviceModelHandlers,
    InvalidValue,
    VariableId,
)
from ocpp_sync.station.components import STANDARD
from ocpp_sync.station.reports import base_report, custom_report, frame_size, notify_reports
from ocpp_sync.station.values import check_value

NOW = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)
VERSIONS = ["2.0.1", "2.1"]


# -- values ------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(value=st.integers(-10**6, 10**6), low=st.integers(-1000, 1000), span=st.integers(0, 2000))
def test_an_integer_is_accepted_exactly_within_its_limits(value: int, low: int, span: int) -> None:
    ch = Characteristics("integer", min_limit=low, max_limit=low + span)
    if low <= value <= low + span:
        assert check_value(str(value), ch) == str(value)
    else:
        with pytest.raises(InvalidValue) as caught:
            check_value(str(value), ch)
        assert caught.value.reason == ("ValueTooLow" if value < low else "ValueTooHigh")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=12))
def test_only_integers_and_decimals_pass_as_numbers(text: str) -> None:
    try:
        int(text, 10)
        is_int = text.strip() == text and "_" not in text and text.isascii()
    except ValueError:
        is_int = False
    try:
        check_value(text, Characteristics("integer"))
        accepted = True
    except InvalidValue:
        accepted = False
    assert accepted == is_int


def test_decimals_booleans_datetimes_and_strings() -> None:
    assert check_value("1.5", Characteristics("decimal", max_limit=2)) == "1.5"
    for bad in ("nan", "1,5", "", "inf", "1e999"):
        with pytest.raises(InvalidValue):
            check_value(bad, Characteristics("decimal"))
    assert check_value("TRUE", Characteristics("boolean")) == "true"
    with pytest.raises(InvalidValue):
        check_value("1", Characteristics("boolean"))
    assert check_value("2026-01-05T08:00:00Z", Characteristics("dateTime"))
    with pytest.raises(InvalidValue):
        check_value("2026-01-05T08:00:00", Characteristics("dateTime"))  # no zone
    with pytest.raises(InvalidValue) as caught:
        check_value("x" * 41, Characteristics("string", max_limit=40))
    assert caught.value.reason == "ValueTooHigh"


@settings(max_examples=200, deadline=None)
@given(chosen=st.lists(st.sampled_from(["A", "B", "C", "D", "Z"]), max_size=6))
def test_list_values_hold_known_members_once(chosen: list[str]) -> None:
    ch = Characteristics("MemberList", values_list=("A", "B", "C", "D"), max_elements=3)
    valid = "Z" not in chosen and len(set(chosen)) == len(chosen) and len(chosen) <= 3
    try:
        assert check_value(",".join(chosen), ch) == ",".join(chosen)
        assert valid
    except InvalidValue:
        assert not valid
    option = Characteristics("OptionList", values_list=("A", "B"))
    assert check_value("A", option) == "A"
    with pytest.raises(InvalidValue):
        check_value("A,B", option)


def test_characteristics_refuse_an_unknown_type_or_a_list_without_values() -> None:
    with pytest.raises(ValueError):
        Characteristics("float")
    with pytest.raises(ValueError):
        Characteristics("OptionList")
    with pytest.raises(ValueError):
        Characteristics("OptionList", values_list=tuple(f"option{i}" for i in range(200)))
    with pytest.raises(ValueError):
        Characteristics("decimal", unit="kilowatt-hours-per-day")
    with pytest.raises(ValueError):
        DeviceModel().add("X" * 51, "Y", Characteristics("string"))


# -- the standard model ------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_the_standard_model_has_every_row_in_every_place(version: str) -> None:
    model = DeviceModel.standard(version, evses={1: 2, 2: 1})
    for row in STANDARD:
        if row.scope == "station":
            places = [ComponentId(row.component)]
        elif row.scope == "evse":
            places = [ComponentId("EVSE", evse_id=1), ComponentId("EVSE", evse_id=2)]
        else:
            places = [ComponentId("Connector", evse_id=e, connector_id=c) for e, c in ((1, 1), (1, 2), (2, 1))]
        for place in places:
            assert model.variable(place, VariableId(row.variable, row.instance)) is not None, (place, row)
    ctrlrs = {c.name for c in model.components()}
    for name in ("OCPPCommCtrlr", "DeviceDataCtrlr", "AuthCtrlr", "AuthCacheCtrlr", "LocalAuthListCtrlr",
                 "SampledDataCtrlr", "AlignedDataCtrlr", "TxCtrlr", "SecurityCtrlr", "ChargingStation",
                 "SmartChargingCtrlr", "ReservationCtrlr", "ClockCtrlr"):
        assert name in ctrlrs
    assert model.variable(ComponentId("Connector", evse_id=2, connector_id=2), "Available") is None
    power = model.variable(ComponentId("EVSE", evse_id=1), "Power")
    assert power is not None and set(power.attributes) == {"Actual", "MaxSet"}


def test_statuses_of_get_and_set() -> None:
    model = DeviceModel.standard()
    assert model.get("NoSuchCtrlr", "Enabled").status == "UnknownComponent"
    assert model.get("AuthCtrlr", "NoSuchVariable").status == "UnknownVariable"
    assert model.get("AuthCtrlr", "Enabled", "Target").status == "NotSupportedAttributeType"
    assert model.get(ComponentId("EVSE", evse_id=1), "Power", "MaxSet").value == "22000"
    # write-only: set, never read back
    secret = model.set("SecurityCtrlr", "BasicAuthPassword", "a" * 20, by_csms=True)
    assert secret.status == "Accepted"
    read = model.get("SecurityCtrlr", "BasicAuthPassword")
    assert (read.status, read.reason, read.value) == ("Rejected", "WriteOnly", None)
    # read-only: the CSMS may not write it, the application may
    items = VariableId("ItemsPerMessage", "GetVariables")
    assert model.set("DeviceDataCtrlr", items, "5", by_csms=True).reason == "ReadOnly"
    assert model.set("DeviceDataCtrlr", items, "5").status == "Accepted"
    assert model.get("DeviceDataCtrlr", items).value == "5"
    # the value must fit its characteristics, whoever sets it
    assert model.set("OCPPCommCtrlr", "HeartbeatInterval", "0").reason == "ValueTooLow"
    assert model.set("TxCtrlr", "TxStartPoint", "Authorized,Nowhere", by_csms=True).reason == "InvalidValue"
    assert model.value("TxCtrlr", "TxStartPoint") == "PowerPathClosed"


def test_reboot_required_application_variables_and_sizes() -> None:
    model = DeviceModel.standard()
    model.add(ComponentId("Modem", "wan"), VariableId("Apn"), Characteristics("string", max_limit=60),
              [Attribute("Actual", "internet", persistent=True)], reboot_required=True)
    assert model.set(ComponentId("Modem", "wan"), "Apn", "m2m", by_csms=True).status == "RebootRequired"
    assert model.value(ComponentId("Modem", "wan"), "Apn") == "m2m"
    assert model.set(ComponentId("Modem", "wan"), "Apn", "m2m").status == "Accepted"  # the application's own
    model.set("DeviceDataCtrlr", "ConfigurationValueSize", "4")
    assert model.set("ClockCtrlr", "TimeZone", "Europe/Paris", by_csms=True).reason == "TooLargeElement"
    model.set("DeviceDataCtrlr", "ReportingValueSize", "3")
    assert model.get("ClockCtrlr", "TimeSource").value == "Hea"
    constant = model.add("Meter", "Serial", Characteristics("string"),
                         [Attribute("Actual", "S1", "ReadWrite", constant=True)])
    assert not constant.attributes["Actual"].writable
    assert model.set("Meter", "Serial", "S2", by_csms=True).reason == "ReadOnly"
    with pytest.raises(ValueError):
        model.add("Meter", "Phases", Characteristics("integer", max_limit=3), [Attribute("Actual", "4")])
    with pytest.raises(ValueError):
        DeviceModel("1.6")


def test_a_bound_variable_is_read_at_each_get() -> None:
    model = DeviceModel.standard()
    readings = iter(["100", "250"])
    model.bind(ComponentId("EVSE", evse_id=1), "Power", lambda: next(readings))
    assert [model.get(ComponentId("EVSE", evse_id=1), "Power").value for _ in range(2)] == ["100", "250"]
    with pytest.raises(KeyError):
        model.bind("AuthCtrlr", "Nothing", lambda: "")


# -- persistence -------------------------------------------------------------------------------

def test_persistent_values_survive_a_restart_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    model = DeviceModel.standard(path=path)
    assert model.set("OCPPCommCtrlr", "HeartbeatInterval", "42", by_csms=True).accepted
    model.set("ChargingStation", "AvailabilityState", "Unavailable")  # a state: not persistent
    assert not (tmp_path / "model.json.tmp").exists()
    stored = json.loads(path.read_text())
    names = {v["variable"] for v in stored["values"]}
    assert "HeartbeatInterval" in names and "AvailabilityState" not in names and "ItemsPerMessage" not in names
    again = DeviceModel.standard(path=path)
    assert again.value("OCPPCommCtrlr", "HeartbeatInterval") == "42"
    assert again.value("ChargingStation", "AvailabilityState") == "Available"


def test_starting_values_are_set_before_the_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    start = {("SecurityCtrlr", "Identity"): "CP_1", ("OCPPCommCtrlr", "OfflineThreshold"): "10"}
    first = DeviceModel.standard(path=path, values=start)
    assert first.value("SecurityCtrlr", "Identity") == "CP_1"
    assert not path.exists()  # starting values are not a change worth saving
    first.set("SecurityCtrlr", "Identity", "CP_CSMS", by_csms=True)
    again = DeviceModel.standard(path=path, values=start)
    assert again.value("SecurityCtrlr", "Identity") == "CP_CSMS"
    assert again.value("OCPPCommCtrlr", "OfflineThreshold") == "10"
    with pytest.raises(ValueError):
        DeviceModel.standard(values={("OCPPCommCtrlr", "OfflineThreshold"): "soon"})
    with pytest.raises(KeyError):
        DeviceModel.standard(values={("OCPPCommCtrlr", "Nothing"): "1"})


def test_loading_skips_what_the_model_no_longer_allows(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": 1, "values": [
        {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "attribute": "Actual", "value": "x"},
        {"component": "Gone", "variable": "Thing", "attribute": "Actual", "value": "1"},
        {"component": "DeviceDataCtrlr", "variable": "ConfigurationValueSize", "value": "10"},
        {"component": "OCPPCommCtrlr", "variable": "OfflineThreshold", "value": "77"}]}))
    model = DeviceModel.standard(path=path)
    assert model.value("OCPPCommCtrlr", "HeartbeatInterval") == "300"
    assert model.value("DeviceDataCtrlr", "ConfigurationValueSize") == "1000"  # constant: not restored
    assert model.value("OCPPCommCtrlr", "OfflineThreshold") == "77"
    assert model.load() == 1


# -- reports -----------------------------------------------------------------------------------

def cv(m: Any, component: str, variable: str | None = None, evse: int | None = None,
       connector: int | None = None) -> Any:
    return m.ComponentVariableType(
        component=m.ComponentType(name=component, evse=None if evse is None else m.EVSEType(
            id=evse, connector_id=connector)),
        variable=None if variable is None else m.VariableType(name=variable))


def test_base_reports_choose_their_variables() -> None:
    model = DeviceModel.standard(evses=2)
    full = base_report(model, "FullInventory")
    config = base_report(model, "ConfigurationInventory")
    summary = base_report(model, "SummaryInventory")
    assert len(full) == len(model.variables())
    assert config and all(any(a.mutability != "ReadOnly" for a in v.attributes.values()) for v in config)
    assert {v.id.name for v in summary} == {"AvailabilityState", "Available", "Problem"}
    assert len([v for v in summary if v.component.name == "EVSE"]) == 4
    with pytest.raises(ValueError):
        base_report(model, "Everything")


def test_get_report_filters_by_component_variable_and_criteria() -> None:
    model = DeviceModel.standard(evses={1: 2, 2: 1})
    m = version_module("2.0.1")
    names = lambda vs: sorted({(v.component.name, v.component.evse_id, v.component.connector_id, v.id.name)  # noqa: E731
                               for v in vs})
    assert len(custom_report(model, [cv(m, "AuthCtrlr")], None)) == len(model.variables("AuthCtrlr"))
    assert names(custom_report(model, [cv(m, "Connector", "Available", evse=1)], None)) == [
        ("Connector", 1, 1, "Available"), ("Connector", 1, 2, "Available")]
    assert len(custom_report(model, [cv(m, "Connector", evse=1, connector=2)], None)) == 4
    assert custom_report(model, [cv(m, "NoSuchCtrlr")], None) == []
    # Problem holds only where it is true; Enabled holds unless it is false
    assert custom_report(model, None, ["Problem"]) == []
    model.set("ChargingStation", "Problem", "true")
    assert {v.component.name for v in custom_report(model, None, ["Problem"])} == {"ChargingStation"}
    model.set("AuthCacheCtrlr", "Enabled", "false")
    enabled = {v.component.name for v in custom_report(model, None, ["Enabled"])}
    assert "AuthCacheCtrlr" not in enabled and "AuthCtrlr" in enabled and "TxCtrlr" in enabled
    both = custom_report(model, [cv(m, "AuthCacheCtrlr"), cv(m, "ChargingStation")], ["Problem"])
    assert {v.component.name for v in both} == {"ChargingStation"}


def test_report_data_hides_write_only_values_and_carries_characteristics() -> None:
    model = DeviceModel.standard()
    model.set("SecurityCtrlr", "BasicAuthPassword", "p" * 16)
    [password] = custom_report(model, [cv(version_module("2.0.1"), "SecurityCtrlr", "BasicAuthPassword")], None)
    [message] = notify_reports(model, 1, [password], NOW, items=10, max_bytes=10_000)
    [data] = message.report_data
    assert data.variable_attribute[0].value is None and data.variable_attribute[0].mutability == "WriteOnly"
    assert data.variable_characteristics.data_type == "string" and data.variable_characteristics.max_limit == 40
    assert (message.seq_no, message.tbc, message.generated_at) == (0, None, NOW)


MODELS = {v: DeviceModel.standard(v, evses={1: 2}) for v in VERSIONS}


@settings(max_examples=20, deadline=None)
@given(items=st.integers(1, 30), max_bytes=st.integers(600, 6000), version=st.sampled_from(VERSIONS))
def test_notify_reports_respect_items_and_bytes(items: int, max_bytes: int, version: str) -> None:
    model = MODELS[version]
    variables = base_report(model, "FullInventory")
    messages = notify_reports(model, 9, variables, NOW, items=items, max_bytes=max_bytes)
    assert [msg.seq_no for msg in messages] == list(range(len(messages)))
    assert [msg.tbc for msg in messages] == [True] * (len(messages) - 1) + [None]
    sent = [d for msg in messages for d in msg.report_data]
    assert [(d.component.name, d.variable.name, d.variable.instance) for d in sent] == [
        (v.component.name, v.id.name, v.id.instance) for v in variables]
    for msg in messages:
        assert len(msg.report_data) <= items
        assert len(msg.report_data) == 1 or frame_size("NotifyReport", msg) <= max_bytes
    # greedy: a message is cut only when the next item would break a limit
    for msg, following in zip(messages, messages[1:], strict=False):
        if len(msg.report_data) < items:
            bigger = attrs.evolve(msg, seq_no=len(variables),
                                   report_data=[*msg.report_data, following.report_data[0]])
            assert frame_size("NotifyReport", bigger) > max_bytes


# -- the handlers, called directly ----------------------------------------------------------------

def handlers(version: str = "2.0.1") -> tuple[DeviceModelHandlers, Any]:
    return DeviceModelHandlers(DeviceModel.standard(version), clock=lambda: NOW), version_module(version)


def test_get_variables_answers_each_item() -> None:
    dm, m = handlers()
    data = [m.GetVariableDataType(component=m.ComponentType(name=c), variable=m.VariableType(name=v),
                                  attribute_type=a)
            for c, v, a in (("OCPPCommCtrlr", "HeartbeatInterval", None), ("Nope", "X", None),
                            ("AuthCtrlr", "Nope", None), ("AuthCtrlr", "Enabled", "MaxSet"),
                            ("SecurityCtrlr", "BasicAuthPassword", None), ("ClockCtrlr", "DateTime", None))]
    answer = dm.on_get_variables(m.GetVariablesRequest(get_variable_data=data))
    assert [r.attribute_status for r in answer.get_variable_result] == [
        "Accepted", "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType", "Rejected", "Accepted"]
    assert answer.get_variable_result[0].attribute_value == "300"
    assert answer.get_variable_result[4].attribute_status_info.reason_code == "WriteOnly"
    assert answer.get_variable_result[5].attribute_value == "2026-01-05T08:00:00Z"


@pytest.mark.parametrize("version", VERSIONS)
def test_too_many_items_or_bytes_is_a_call_error(version: str) -> None:
    dm, m = handlers(version)
    dm.model.set("DeviceDataCtrlr", VariableId("ItemsPerMessage", "GetVariables"), "2")
    one = m.GetVariableDataType(component=m.ComponentType(name="AuthCtrlr"), variable=m.VariableType(name="Enabled"))
    assert len(dm.on_get_variables(m.GetVariablesRequest(get_variable_data=[one, one])).get_variable_result) == 2
    with pytest.raises(OCPPError) as caught:
        dm.on_get_variables(m.GetVariablesRequest(get_variable_data=[one] * 3))
    assert caught.value.code == "OccurrenceConstraintViolation"
    dm.model.set("DeviceDataCtrlr", VariableId("BytesPerMessage", "SetVariables"), "100")
    item = m.SetVariableDataType(component=m.ComponentType(name="ClockCtrlr"), variable=m.VariableType(
        name="TimeZone"), attribute_value="x" * 60)
    with pytest.raises(OCPPError) as caught:
        dm.on_set_variables(m.SetVariablesRequest(set_variable_data=[item]))
    assert caught.value.code == "FormatViolation"
    dm.model.set("DeviceDataCtrlr", VariableId("ItemsPerMessage", "GetReport"), "1")
    with pytest.raises(OCPPError) as caught:
        dm.on_get_report(m.GetReportRequest(request_id=1, component_variable=[cv(m, "A"), cv(m, "B")]))
    assert caught.value.code == "OccurrenceConstraintViolation"


def test_set_variables_calls_back_with_each_change() -> None:
    dm, m = handlers()
    seen: list[Change] = []
    dm.on_change(seen.append)

    @dm.on_change
    def broken(_change: Change) -> None:
        raise RuntimeError("the application failed")

    def item(c: str, v: str, value: str) -> Any:
        return m.SetVariableDataType(component=m.ComponentType(name=c), variable=m.VariableType(name=v),
                                     attribute_value=value)

    answer = dm.on_set_variables(m.SetVariablesRequest(set_variable_data=[
        item("OCPPCommCtrlr", "HeartbeatInterval", "120"), item("OCPPCommCtrlr", "HeartbeatInterval", "120"),
        item("ChargingStation", "Available", "false"), item("OCPPCommCtrlr", "OfflineThreshold", "-1")]))
    assert [r.attribute_status for r in answer.set_variable_result] == ["Accepted", "Accepted", "Rejected",
                                                                        "Rejected"]
    assert [r.attribute_status_info.reason_code for r in answer.set_variable_result[2:]] == ["ReadOnly",
                                                                                            "ValueTooLow"]
    assert seen == [Change(ComponentId("OCPPCommCtrlr"), VariableId("HeartbeatInterval"), "Actual", "300", "120",
                           False)]


def test_report_answers() -> None:
    dm, m = handlers()
    assert dm.on_get_base_report(m.GetBaseReportRequest(request_id=1, report_base="FullInventory")).status \
        == "Accepted"
    assert dm.on_get_report(m.GetReportRequest(request_id=2, component_variable=[cv(m, "Nope")])).status \
        == "EmptyResultSet"
    limited = DeviceModelHandlers(dm.model, report_bases=["FullInventory"], criteria=["Problem"])
    assert limited.on_get_base_report(m.GetBaseReportRequest(request_id=3, report_base="SummaryInventory")).status \
        == "NotSupported"
    assert limited.on_get_report(m.GetReportRequest(request_id=4, component_criteria=["Active"])).status \
        == "NotSupported"


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


def test_reports_go_only_once_the_answer_is_sent() -> None:
    dm, m = handlers()
    cp = RecordingChargePoint("2.0.1")
    dm.attach(cp)
    request = m.GetBaseReportRequest(request_id=5, report_base="SummaryInventory")
    answer = cp.handlers[m.GetBaseReportRequest](request)
    assert answer.status == "Accepted"
    assert dm.reporter.join_idle(5) and cp.sent == []
    cp.hooks[m.GetBaseReportRequest](request, answer)
    assert dm.reporter.join_idle(5)
    assert [(r.request_id, r.seq_no) for r in cp.sent] == [(5, 0)]
    dm.stop(5)
    with pytest.raises(ValueError):
        dm.attach(RecordingChargePoint("2.1"))
