"""Schema-generated payloads of every message survive from_payload then to_payload.

Payloads come from the official schemas (hypothesis-jsonschema for every leaf value,
the schema's own object and array structure around them), so every action,
request and response, is exercised with data we did not pick. The output must equal
the input, except that a date-time may be spelled differently for the same instant,
and must itself validate against the official schema (date-time format checked).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest
from support import schemas

from ocpp_sync import from_payload, to_payload
from ocpp_sync.protocol.versions import version_module

hypothesis = pytest.importorskip("hypothesis")
hypothesis_jsonschema = pytest.importorskip("hypothesis_jsonschema")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = 12

# Reproducible in CI: a fixed sequence of examples and no example database; no shrinking,
# which costs tens of seconds per failing message and is not needed to read the failure.
PROFILE = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: a failure shows as drawn
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

EXPECTED_COUNTS = {"1.6": (39, 39), "2.0.1": (64, 64), "2.1": (91, 90)}


def _cases() -> list[Any]:
    out = []
    for version in schemas.VERSIONS:
        for action, is_request, cls in schemas.messages(version):
            kind = "request" if is_request else "response"
            out.append(pytest.param(version, action, is_request, cls, id=f"{version}-{action}-{kind}"))
    return out


CASES = _cases()


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def normalise(value: Any, node: dict[str, Any], root: dict[str, Any]) -> Any:
    """The payload with each schema date-time replaced by the instant it names."""
    node = _resolve(node, root)
    if node.get("format") == "date-time" and isinstance(value, str):
        return ("instant", schemas.instant(value))
    if isinstance(value, dict):
        props = node.get("properties", {})
        # A null in an untyped field (DataTransfer data) is read as absent, as documented.
        return {k: normalise(v, props[k], root) if k in props else v for k, v in value.items()
                if not (v is None and k in props and "type" not in props[k] and "$ref" not in props[k])}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [normalise(v, node["items"], root) for v in value]
    return value


def date_times(value: Any, node: dict[str, Any], root: dict[str, Any]) -> list[str]:
    node = _resolve(node, root)
    if node.get("format") == "date-time" and isinstance(value, str):
        return [value]
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in node.get("properties", {}):
                found += date_times(v, node["properties"][k], root)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for v in value:
            found += date_times(v, node["items"], root)
    return found


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON, and of the same JSON types (1 and 1.0 and True are not interchangeable)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple):  # normalised date-time
        return a == b
    return type(a) is type(b) and a == b


def check_round_trip(version: str, action: str, is_request: bool, cls: type, payload: dict[str, Any]) -> None:
    schema = schemas.message_schema(version, action, is_request)
    msg = from_payload(cls, payload)
    assert type(msg) is cls
    out = to_payload(msg)
    assert same_json(normalise(payload, schema, schema), normalise(out, schema, schema)), (payload, out)
    errors = sorted(schemas.validator(version, action, is_request).iter_errors(out), key=str)
    assert not errors, [e.message for e in errors]
    for text in date_times(out, schema, schema):
        assert text.endswith("Z"), text
    # and the output reads back to an equal object
    assert from_payload(cls, out) == msg


RAN: dict[tuple[str, str, bool], int] = {}


@schemas.requires_schemas
@pytest.mark.parametrize("version,action,is_request,cls", CASES)
def test_round_trip(version: str, action: str, is_request: bool, cls: type) -> None:
    strategy = schemas.payloads(schemas.inline_refs(schemas.message_schema(version, action, is_request)))
    key = (version, action, is_request)
    RAN[key] = 0

    @PROFILE
    @given(strategy)
    def run(payload: dict[str, Any]) -> None:
        RAN[key] += 1
        check_round_trip(version, action, is_request, cls, payload)

    run()
    assert RAN[key] >= 1


@schemas.requires_schemas
@pytest.mark.parametrize("version", schemas.VERSIONS)
def test_every_schema_has_a_class(version: str) -> None:
    module = version_module(version)
    requests, responses = schemas.schema_actions(version)
    assert sorted(module.REQUESTS) == sorted(requests)
    assert sorted(module.RESPONSES) == sorted(responses)
    assert (len(module.REQUESTS), len(module.RESPONSES)) == EXPECTED_COUNTS[version]


# -- date-times as hypothesis-jsonschema spells them ---------------------------

DATE_TIME = hypothesis_jsonschema.from_schema({"type": "string", "format": "date-time"})


def _read_back(text: str) -> tuple[_dt.datetime, str]:
    from ocpp_sync import v16

    msg = from_payload(v16.HeartbeatResponse, {"currentTime": text})
    return msg.current_time, to_payload(msg)["currentTime"]


@settings(PROFILE, max_examples=300)
@given(DATE_TIME)
def test_every_generated_date_time_spelling_is_read(text: str) -> None:
    assert schemas.is_rfc3339(text)
    parsed, out = _read_back(text)
    expected = schemas.instant(text)
    assert parsed.tzinfo is not None
    assert parsed.astimezone(_dt.timezone.utc).replace(tzinfo=None) == expected
    assert out.endswith("Z") and schemas.instant(out) == expected


@settings(PROFILE, max_examples=500)
@given(st.datetimes(min_value=_dt.datetime(1, 1, 2), max_value=_dt.datetime(9998, 12, 31)),
       st.sampled_from(["", ".5", ".123", ".123456", ".1234567891"]))
def test_the_fast_path_for_utc_date_times_reads_what_the_general_one_reads(
        value: _dt.datetime, fraction: str) -> None:
    """"...T...Z" goes to the C parser; the same instant spelled "t" goes the general way."""
    from ocpp_sync.protocol.datetimes import parse_datetime

    text = value.replace(microsecond=0).isoformat() + fraction + "Z"
    fast, general = parse_datetime(text), parse_datetime(text.replace("T", "t"))
    assert fast == general and fast.tzinfo is general.tzinfo is _dt.timezone.utc


@pytest.mark.parametrize("text", [
    "2024-01-31T23:59:59Z",
    "2024-01-31t23:59:59z",
    "2024-01-31T23:59:59.5+05:30",
    "2024-01-31T23:59:59.123456789-00:00",
    "2024-02-29T00:00:00.000Z",
    "2024-01-31T23:59:59+23:59",
    "2024-01-31T00:00:00-23:59",
    "2016-12-31T23:59:60Z",
])
def test_odd_but_valid_date_times_are_read(text: str) -> None:
    parsed, out = _read_back(text)
    assert parsed.astimezone(_dt.timezone.utc).replace(tzinfo=None) == schemas.instant(text)
    assert schemas.instant(out) == schemas.instant(text)


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+01:00",   # one hour before year 1 in UTC
    "9999-12-31T23:59:59-01:00",   # one hour after year 9999 in UTC
])
def test_date_times_at_the_edge_of_the_calendar(text: str) -> None:
    """RFC 3339 allows these; Python's datetime cannot hold their UTC instant.

    Reading may refuse them (TypeConstraintViolation), but whatever from_payload
    accepts, to_payload must send: never an OverflowError escaping the codec.
    """
    from ocpp_sync import ValidationError, v16

    try:
        msg = from_payload(v16.HeartbeatResponse, {"currentTime": text})
        out = to_payload(msg)["currentTime"]
    except ValidationError as exc:
        assert exc.code == "TypeConstraintViolation" and exc.path == "currentTime"
        return
    assert schemas.is_rfc3339(out) and out.endswith("Z")
