"""Single behaviours of the message layer, each pinned by a small example."""
from __future__ import annotations

import datetime as _dt
import enum
import json
import logging
import re
import subprocess
import sys

import attrs
import pytest
from support import schemas

import ocpp_sync
from ocpp_sync import OCPPError, ValidationError, from_payload, to_payload, v16, v21, v201
from ocpp_sync.protocol import spec as _spec
from ocpp_sync.protocol.codec import converter
from ocpp_sync.protocol.versions import message_info, version_module

UTC = _dt.timezone.utc
NOW = _dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def boot_response_16(**kw):
    values = dict(status=v16.RegistrationStatus.ACCEPTED, current_time=NOW, interval=300)
    values.update(kw)
    return v16.BootNotificationResponse(**values)


# -- enums ------------------------------------------------------------------------

def test_enum_members_equal_their_wire_strings() -> None:
    assert v16.RegistrationStatus.ACCEPTED == "Accepted"
    assert v201.RegistrationStatusEnumType.PENDING == "Pending"
    assert issubclass(v16.RegistrationStatus, str) and issubclass(v16.RegistrationStatus, enum.Enum)
    assert from_payload(v16.BootNotificationResponse, to_payload(boot_response_16())).status \
        is v16.RegistrationStatus.ACCEPTED


def test_plain_strings_are_accepted_for_enums_on_send() -> None:
    out = to_payload(boot_response_16(status="Rejected"))
    assert out["status"] == "Rejected" and type(out["status"]) is str
    member = to_payload(boot_response_16(status=v16.RegistrationStatus.PENDING))["status"]
    assert member == "Pending" and type(member) is str  # plain str on the wire, not the member
    with pytest.raises(ValidationError) as exc:
        to_payload(boot_response_16(status="accepted"))  # case matters
    assert (exc.value.code, exc.value.path) == ("PropertyConstraintViolation", "status")


# -- date-times -------------------------------------------------------------------

def test_naive_datetime_is_refused_when_strict() -> None:
    with pytest.raises(ValidationError) as exc:
        to_payload(boot_response_16(current_time=_dt.datetime(2024, 5, 6, 7, 8, 9)))
    assert (exc.value.code, exc.value.path) == ("TypeConstraintViolation", "currentTime")
    assert "naive" in str(exc.value)


def test_naive_datetime_is_sent_as_utc_with_a_warning_when_lenient(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ocpp_sync"):
        out = to_payload(boot_response_16(current_time=_dt.datetime(2024, 5, 6, 7, 8, 9)), lenient=True)
    assert out["currentTime"] == "2024-05-06T07:08:09Z"
    assert any("naive" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value,wire", [
    (_dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), "2024-05-06T07:08:09Z"),
    (_dt.datetime(2024, 5, 6, 9, 8, 9, 120000, tzinfo=_dt.timezone(_dt.timedelta(hours=2))),
     "2024-05-06T07:08:09.120Z"),
    (_dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), "2024-05-06T07:08:09.123456Z"),
    (_dt.datetime(2024, 5, 6, 2, 8, 9, tzinfo=_dt.timezone(-_dt.timedelta(hours=5))), "2024-05-06T07:08:09Z"),
])
def test_datetimes_go_out_as_rfc3339_utc_with_z(value: _dt.datetime, wire: str) -> None:
    out = to_payload(boot_response_16(current_time=value))["currentTime"]
    assert out == wire and schemas.is_rfc3339(out)


def test_offsets_are_read_as_the_same_instant() -> None:
    msg = from_payload(v16.HeartbeatResponse, {"currentTime": "2024-05-06T09:08:09.5+02:00"})
    assert msg.current_time == _dt.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)
    assert msg.current_time.utcoffset() is not None


def test_zoneless_timestamp_is_refused_strict_and_read_as_utc_lenient(caplog: pytest.LogCaptureFixture) -> None:
    payload = {"currentTime": "2024-05-06T07:08:09"}
    with pytest.raises(ValidationError) as exc:
        from_payload(v16.HeartbeatResponse, payload)
    assert (exc.value.code, exc.value.path) == ("TypeConstraintViolation", "currentTime")
    with caplog.at_level(logging.WARNING, logger="ocpp_sync"):
        msg = from_payload(v16.HeartbeatResponse, payload, lenient=True)
    assert msg.current_time == _dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert caplog.records


# -- numbers --------------------------------------------------------------------------

def test_integers_stay_integers() -> None:
    out = to_payload(boot_response_16(interval=300))
    assert out["interval"] == 300 and type(out["interval"]) is int
    period = {"startPeriod": 0, "limit": 16}  # a JSON number given as an integer stays one
    msg = from_payload(v16.ChargingSchedulePeriod, period)
    assert to_payload(msg) == period and type(to_payload(msg)["limit"]) is int


@pytest.mark.parametrize("value", [1.23456, 0.1, 230.7, 1e-7, 123456789.123])
def test_floats_keep_their_digits(value: float) -> None:
    payload = {"value": value}
    msg = from_payload(v201.SampledValueType, payload)
    assert msg.value == value
    out = to_payload(msg)
    assert json.dumps(out) == json.dumps(payload)


def test_decimal_limit_keeps_its_digits() -> None:
    msg = v16.ChargingSchedulePeriod(start_period=0, limit=12.3)
    assert to_payload(msg) == {"startPeriod": 0, "limit": 12.3}


@pytest.mark.parametrize("limit", [64.10000000000001, 0.30000000000000004 * 10, 3 * 0.1 * 100])
def test_multiple_of_accepts_what_jsonschema_accepts(limit: float) -> None:
    """A value the reference validator accepts (a peer's 641 * 0.1) must not be refused.

    The converse need not hold: jsonschema refuses some products of binary
    rounding (0.30000000000000004 * 10) that we let through.
    """
    jsonschema = pytest.importorskip("jsonschema")
    node = {"type": "number", "multipleOf": 0.1}
    accepted_by_jsonschema = jsonschema.Draft4Validator(node).is_valid(limit)
    try:
        from_payload(v16.ChargingSchedulePeriod, {"startPeriod": 0, "limit": limit})
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted or not accepted_by_jsonschema, limit


def test_multiple_of_still_refuses_real_misfits() -> None:
    with pytest.raises(ValidationError) as exc:
        from_payload(v16.ChargingSchedulePeriod, {"startPeriod": 0, "limit": 0.15})
    assert (exc.value.code, exc.value.path) == ("PropertyConstraintViolation", "limit")


# -- lenient mode ----------------------------------------------------------------------

def test_lenient_drops_unknown_fields_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    payload = {"chargePointVendor": "ACME", "chargePointModel": "X1", "firmwareFlavour": "beta"}
    with pytest.raises(ValidationError) as exc:
        from_payload(v16.BootNotificationRequest, payload)
    assert (exc.value.code, exc.value.path) == ("FormationViolation", "firmwareFlavour")
    with caplog.at_level(logging.WARNING, logger="ocpp_sync"):
        msg = from_payload(v16.BootNotificationRequest, payload, lenient=True)
    assert to_payload(msg) == {"chargePointVendor": "ACME", "chargePointModel": "X1"}
    assert any("firmwareFlavour" in r.getMessage() for r in caplog.records)


def test_lenient_keeps_over_long_strings_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    model = "M" * 25  # chargePointModel is limited to 20
    payload = {"chargePointVendor": "ACME", "chargePointModel": model}
    with pytest.raises(ValidationError) as exc:
        from_payload(v16.BootNotificationRequest, payload)
    assert (exc.value.code, exc.value.path) == ("PropertyConstraintViolation", "chargePointModel")
    with caplog.at_level(logging.WARNING, logger="ocpp_sync"):
        msg = from_payload(v16.BootNotificationRequest, payload, lenient=True)
    assert msg.charge_point_model == model
    assert to_payload(msg, lenient=True)["chargePointModel"] == model
    assert caplog.records
    with pytest.raises(ValidationError):
        to_payload(msg)  # strict sending still refuses it


def test_lenient_does_not_excuse_wrong_types() -> None:
    with pytest.raises(ValidationError) as exc:
        from_payload(v16.BootNotificationResponse,
                     {"status": "Accepted", "currentTime": "2024-05-06T07:08:09Z", "interval": "300"},
                     lenient=True)
    assert (exc.value.code, exc.value.path) == ("TypeConstraintViolation", "interval")


# -- open objects and any-typed data ----------------------------------------------------

def test_custom_data_additional_properties_are_preserved() -> None:
    custom = {"vendorId": "com.example", "colour": "teal", "nested": {"a": [1, 2.5, None, True]}}
    payload = {"customData": custom, "chargingStation": {"model": "X1", "vendorName": "ACME"},
               "reason": "PowerUp"}
    msg = from_payload(v201.BootNotificationRequest, payload)
    assert msg.custom_data.vendor_id == "com.example"
    assert msg.custom_data.additional_properties == {"colour": "teal", "nested": {"a": [1, 2.5, None, True]}}
    assert to_payload(msg) == payload
    built = v201.BootNotificationRequest(
        custom_data=v201.CustomDataType(vendor_id="v", additional_properties={"x": 1}),
        charging_station=v201.ChargingStationType(model="X1", vendor_name="ACME"), reason="PowerUp")
    assert to_payload(built)["customData"] == {"vendorId": "v", "x": 1}


def test_custom_data_extras_may_not_shadow_declared_fields() -> None:
    built = v201.HeartbeatRequest(custom_data=v201.CustomDataType(vendor_id="v",
                                                                  additional_properties={"vendorId": "w"}))
    with pytest.raises(ValidationError) as exc:
        to_payload(built)
    assert exc.value.code == "FormatViolation" and exc.value.path == "customData.vendorId"


@pytest.mark.parametrize("data", ["text", 7, 2.5, True, [1, "a", None], {"k": {"n": [1, 2]}}])
@pytest.mark.parametrize("module", [v201, v21])
def test_data_transfer_data_is_any_json(module, data) -> None:
    payload = {"vendorId": "com.example", "data": data}
    msg = from_payload(module.DataTransferRequest, payload)
    assert msg.data == data
    assert to_payload(msg) == payload


def test_data_transfer_null_data_is_read_as_absent() -> None:
    """The 2.x schema gives data no type, so null is valid; None means absent in every message class."""
    msg = from_payload(v201.DataTransferResponse, {"status": "Accepted", "data": None})
    assert msg.data is None
    assert to_payload(msg) == {"status": "Accepted"}


def test_data_transfer_data_is_a_string_in_16() -> None:
    assert to_payload(from_payload(v16.DataTransferRequest, {"vendorId": "v", "data": "{\"a\": 1}"}))["data"] \
        == "{\"a\": 1}"
    with pytest.raises(ValidationError) as exc:
        from_payload(v16.DataTransferRequest, {"vendorId": "v", "data": {"a": 1}})
    assert (exc.value.code, exc.value.path) == ("TypeConstraintViolation", "data")


def test_data_transfer_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(ValidationError) as exc:
        to_payload(v201.DataTransferRequest(vendor_id="v", data={"when": NOW}))
    assert exc.value.code == "TypeConstraintViolation" and exc.value.path == "data.when"
    with pytest.raises(ValidationError):
        to_payload(v201.DataTransferRequest(vendor_id="v", data=[float("nan")]))


# -- the tables ------------------------------------------------------------------------

@pytest.mark.parametrize("module,requests,responses", [(v16, 39, 39), (v201, 64, 64), (v21, 91, 90)])
def test_request_and_response_counts(module, requests: int, responses: int) -> None:
    assert (len(module.REQUESTS), len(module.RESPONSES)) == (requests, responses)
    assert module.CS_TO_CSMS | module.CSMS_TO_CS == set(module.REQUESTS)
    assert module.CS_TO_CSMS & module.CSMS_TO_CS == {"DataTransfer"}
    for action, cls in module.REQUESTS.items():
        assert cls.__name__ == f"{action}Request"
        assert message_info(cls) == (module.VERSION, action, True)
    for action, cls in module.RESPONSES.items():
        assert cls.__name__ == f"{action}Response"
        assert message_info(cls) == (module.VERSION, action, False)
    assert version_module(module.VERSION) is module


def test_notify_periodic_event_stream_has_no_response() -> None:
    assert "NotifyPeriodicEventStream" in v21.REQUESTS
    assert "NotifyPeriodicEventStream" not in v21.RESPONSES


@schemas.requires_schemas
def test_directions_match_the_reference() -> None:
    path = schemas.REPO.parent / "shared" / "ocpp-schemas" / "directions.json"
    if not path.exists():
        pytest.skip("directions.json is only in ../shared/ocpp-schemas")
    reference = json.loads(path.read_text())
    for module, tag in ((v16, "v16"), (v201, "v201"), (v21, "v21")):
        assert module.CS_TO_CSMS == set(reference[tag]["cs_to_csms"]), tag
        assert module.CSMS_TO_CS == set(reference[tag]["csms_to_cs"]), tag


# -- names -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,attr,wire", [
    (v201.DCChargingParametersType, "bulk_soc", "bulkSoC"),
    (v21.V2XChargingParametersType, "ev_min_v2x_energy_request", "evMinV2XEnergyRequest"),
    (v21.V2XChargingParametersType, "target_soc", "targetSoC"),
    (v201.NetworkConnectionProfileType, "ocpp_csms_url", "ocppCsmsUrl"),
    (v21.Get15118EVCertificateRequest, "prioritized_emaids", "prioritizedEMAIDs"),
    (v201.OCSPRequestDataType, "responder_url", "responderURL"),
    (v21.AbsolutePriceScheduleType, "price_schedule_id", "priceScheduleID"),
    (v21.DERChargingParametersType, "ev_duration_level1_dc_injection", "evDurationLevel1DCInjection"),
    (v16.BootNotificationRequest, "charge_point_vendor", "chargePointVendor"),
    (v16.StartTransactionRequest, "id_tag", "idTag"),
])
def test_tricky_wire_names_are_exact(cls: type, attr: str, wire: str) -> None:
    specs = dict(_spec.specs(cls))
    assert specs[attr].wire == wire


@schemas.requires_schemas
@pytest.mark.parametrize("version", schemas.VERSIONS)
def test_message_wire_names_are_the_schema_properties(version: str) -> None:
    for action, is_request, cls in schemas.messages(version):
        schema = schemas.message_schema(version, action, is_request)
        wires = {s.wire for _, s in _spec.specs(cls) if isinstance(s, _spec.FieldSpec)}
        assert wires == set(schema.get("properties", {})), (version, action, is_request)
        required = {s.wire for _, s in _spec.specs(cls) if isinstance(s, _spec.FieldSpec) and s.required}
        assert required == set(schema.get("required", ())), (version, action, is_request)


# A capitalised two-letter word (Id, Of, To, At, No, Tx...) followed by another
# capitalised word: snake_case must keep them apart (parentIdTag -> parent_id_tag).
_TWO_LETTER_WORD = re.compile(r"(?:(?<=[a-z])|(?<![A-Za-z]))[A-Z][a-z](?=[A-Z][a-z])")
_ACRONYMS = {"RoCoF"}


def _glued(wire: str, name: str) -> bool:
    if wire in _ACRONYMS:
        return False
    breaks, letters = set(), 0
    for ch in name:
        if ch == "_":
            breaks.add(letters)
        elif ch.isalnum():
            letters += 1
    return any(sum(c.isalnum() for c in wire[: m.end()]) not in breaks for m in _TWO_LETTER_WORD.finditer(wire))


def test_two_letter_words_are_separated() -> None:
    glued = set()
    for module in (v16, v201, v21):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and attrs.has(obj):
                glued |= {(spec.wire, attr) for attr, spec in _spec.specs(obj)
                          if isinstance(spec, _spec.FieldSpec) and _glued(spec.wire, attr)}
            elif isinstance(obj, type) and issubclass(obj, enum.Enum):
                glued |= {(m.value, m.name) for m in obj if _glued(m.value, m.name)}
    assert not glued, sorted(glued)


def test_snake_case_examples() -> None:
    assert "parent_id_tag" in dict(_spec.specs(v16.IdTagInfo))
    assert v201.AuthorizationStatusEnumType("NoCredit").name == "NO_CREDIT"


# -- errors and the converter -------------------------------------------------------------

def test_validation_error_is_a_value_error_and_an_ocpp_error() -> None:
    with pytest.raises(ValidationError) as exc:
        from_payload(v201.BootNotificationRequest, {"chargingStation": {"vendorName": "ACME"}, "reason": "PowerUp"})
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, OCPPError)
    assert (exc.value.code, exc.value.path) == ("OccurrenceConstraintViolation", "chargingStation.model")
    assert "chargingStation.model" in str(exc.value) and len(str(exc.value)) < 200


def test_cattrs_converter_validates_like_from_payload() -> None:
    conv = converter("1.6")
    payload = {"status": "Accepted", "currentTime": "2024-05-06T07:08:09Z", "interval": 300}
    msg = conv.structure(payload, v16.BootNotificationResponse)
    assert msg == from_payload(v16.BootNotificationResponse, payload)
    assert conv.unstructure(msg) == payload
    with pytest.raises(ValidationError) as exc:
        conv.structure(dict(payload, interval="300"), v16.BootNotificationResponse)
    assert exc.value.code == "TypeConstraintViolation"


def test_public_namespace() -> None:
    assert ocpp_sync.to_payload is to_payload and ocpp_sync.from_payload is from_payload
    assert (v16.VERSION, v201.VERSION, v21.VERSION) == ("1.6", "2.0.1", "2.1")


# -- import time -----------------------------------------------------------------------------

def test_import_of_v201_is_quick() -> None:
    """The figure is for the report (run with -s); the bound only catches a gross regression."""
    code = ("import time; t = time.perf_counter(); import ocpp_sync.v201; "
            "print(time.perf_counter() - t)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    seconds = float(result.stdout.strip())
    print(f"import ocpp_sync.v201: {seconds * 1000:.0f} ms")
    assert seconds < 3.0
