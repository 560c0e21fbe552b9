"""OCPP-J frame parsing and serialising, without a network."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import threading
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_sync.protocol.frames import (
    CALLRESULTERROR,
    NO_ID,
    Call,
    CallErrorFrame,
    CallResult,
    FramingError,
    Send,
    new_message_id,
    parse,
    serialise,
)

VERSIONS = ("1.6", "2.0.1", "2.1")


@pytest.mark.parametrize("version", VERSIONS)
def test_parses_each_frame_type(version):
    assert parse('[2,"a","Heartbeat",{}]', version) == Call("a", "Heartbeat", {})
    assert parse('[3,"a",{"x":1}]', version) == CallResult("a", {"x": 1})
    assert parse('[4,"a","NotImplemented","no",{"k":"v"}]', version) == CallErrorFrame(
        "a", "NotImplemented", "no", {"k": "v"})


def test_2_1_has_callresulterror_and_send():
    assert parse('[5,"a","FormatViolation","bad",{}]', "2.1") == CallErrorFrame(
        "a", "FormatViolation", "bad", {}, CALLRESULTERROR)
    assert parse('[6,"a","NotifyPeriodicEventStream",{}]', "2.1") == Send(
        "a", "NotifyPeriodicEventStream", {})


@pytest.mark.parametrize("text", ['[5,"a","X","d",{}]', '[6,"a","A",{}]', '[7,"a"]', '[0,"a"]'])
def test_unknown_message_type_keeps_the_id(text):
    with pytest.raises(FramingError) as err:
        parse(text, "2.0.1")
    assert (err.value.code, err.value.unique_id) == ("MessageTypeNotSupported", "a")
    assert err.value.message_type is None
    with pytest.raises(FramingError) as err:
        parse(text, "1.6")
    assert (err.value.code, err.value.unique_id) == ("FormationViolation", "a")


@pytest.mark.parametrize("text", [
    "not json", "", "{}", '{"a":1}', "[]", '"text"', "42", "[2]", '[2,5,"Heartbeat",{}]',
    '[2,null,"Heartbeat",{}]', '[3,["a"],{}]', "[2,", '[2,"a",NaN]', '[2,"a","X",{"v":Infinity}]',
    '[2,"a","X",{"v":-Infinity}]', '[2,"a","X",{"v":1e999}]', '[2,"a","X",{"v":-1E400}]',
    '[2,"a","X",{"v":"\\ud800"}]', '[2,"a","X",{"v":"\ud800"}]', '[2,"a","X",{"v":"\x01"}]',
    '\ufeff[2,"a","Heartbeat",{}]', "[" * 100000,
])
@pytest.mark.parametrize("version,code", [("1.6", "FormationViolation"),
                                          ("2.0.1", "RpcFrameworkError"),
                                          ("2.1", "RpcFrameworkError")])
def test_unreadable_id_is_answered_as_minus_one(text, version, code):
    with pytest.raises(FramingError) as err:
        parse(text, version)
    assert (err.value.code, err.value.unique_id) == (code, NO_ID)


@pytest.mark.parametrize("text,message_type", [
    ('[2,"a","Heartbeat"]', 2),
    ('[2,"a",5,{}]', 2),
    ('[2,"a","Heartbeat",{},1]', 2),
    ('[3,"a"]', 3),
    ('[3,"a",{},{}]', 3),
    ('[4,"a","X","d"]', 4),
    ('[4,"a",5,"d",{}]', 4),
    ('[4,"a","X",null,{}]', 4),
    ('[4,"a","X","d",[]]', 4),
    ('["2","a","Heartbeat",{}]', None),
    ('[true,"a","Heartbeat",{}]', None),
    ('[2.0,"a","Heartbeat",{}]', None),
    ('[2,"' + "x" * 37 + '","Heartbeat",{}]', 2),
])
def test_malformed_frame_with_readable_id(text, message_type):
    with pytest.raises(FramingError) as err:
        parse(text, "2.0.1")
    assert err.value.code == "RpcFrameworkError"
    assert err.value.unique_id == json.loads(text)[1]
    assert err.value.message_type == message_type


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                      "utf-32", "utf-32-le", "utf-32-be"])
def test_bytes_in_any_json_encoding(encoding):
    """orjson reads UTF-8 alone; the stdlib's json.loads also read these, and parse still does."""
    text = '[2,"a","DataTransfer",{"vendorId":"Zürich €"}]'
    assert parse(text.encode(encoding), "2.0.1") == Call("a", "DataTransfer", {"vendorId": "Zürich €"})


@pytest.mark.parametrize("raw", [b'[2,"a","X",{"v":"\xff"}]', b'[2,"a","X",{"v":"\xed\xa0\x80"}]'])
def test_bytes_that_are_not_utf8_are_refused(raw):
    """Including a surrogate encoded as UTF-8, which the stdlib path let through (surrogatepass)."""
    with pytest.raises(FramingError) as err:
        parse(raw, "2.0.1")
    assert err.value.unique_id == NO_ID


def test_integers_beyond_64_bits_are_read_as_floats():
    """orjson's choice (and JavaScript's): the stdlib read them exactly; no OCPP field holds one."""
    text = '[3,"a",{"big":123456789012345678901234567890,"u64":18446744073709551615,' \
           '"i64":-9223372036854775808,"below":-9223372036854775809}]'
    payload = parse(text, "2.0.1").payload
    assert payload == {"big": 1.2345678901234568e29, "u64": 2**64 - 1, "i64": -2**63,
                       "below": -9.223372036854776e18}
    assert [type(v) for v in payload.values()] == [float, int, int, float]


def test_nesting_up_to_1024_deep():
    """orjson's limit; the stdlib decoder stopped at the recursion limit, a little under 1000."""
    deep = "[" * 1023 + "]" * 1023
    assert parse(f'[3,"a",{deep}]', "2.0.1").unique_id == "a"
    with pytest.raises(FramingError) as err:
        parse(f'[3,"a",[{deep}]]', "2.0.1")
    assert err.value.unique_id == NO_ID


def test_id_of_36_characters_is_fine():
    uid = "x" * 36
    assert parse(f'[2,"{uid}","Heartbeat",{{}}]', "1.6").unique_id == uid


def test_serialise_is_compact_and_keeps_unicode():
    text = serialise(Call("1", "DataTransfer", {"vendorId": "Zürich €", "data": "a b"}))
    assert text == '[2,"1","DataTransfer",{"vendorId":"Zürich €","data":"a b"}]'
    assert serialise(CallResult("1", {})) == '[3,"1",{}]'
    assert serialise(CallErrorFrame("1", "InternalError")) == '[4,"1","InternalError","",{}]'
    assert serialise(CallErrorFrame("1", "E", "d", {}, CALLRESULTERROR)) == '[5,"1","E","d",{}]'
    assert serialise(Send("1", "A", {})) == '[6,"1","A",{}]'


STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("wrap", [
    lambda v: {"v": v}, lambda v: [1, [2, {"w": v}]], lambda v: {"null": "null", "v": v},
    lambda v: {"deep": [[[[[[[[v]]]]]]]], "n": 2**70},
])
def test_serialise_refuses_nan_and_infinities(value, wrap):
    """orjson would write them as null: the stdlib encoder's ValueError is kept."""
    with pytest.raises(ValueError):
        serialise(CallResult("1", wrap(value)))
    with pytest.raises(ValueError):
        serialise(CallErrorFrame("1", "GenericError", "d", wrap(value)))


class Colour(enum.IntEnum):
    RED = 1


class Side(str, enum.Enum):
    LEFT = "left"


class Text(str):
    pass


class Number(float):
    pass


class Dictionary(dict[str, Any]):
    pass


@dataclasses.dataclass
class Point:
    x: int


circular: list[Any] = []
circular.append(circular)


def test_a_lone_surrogate_is_refused_though_the_stdlib_writes_it():
    """Neither UTF-8 nor any peer can carry one: a ValueError here, not a UnicodeEncodeError in the
    transport after the call was queued."""
    with pytest.raises(ValueError, match="not valid Unicode"):
        serialise(CallResult("1", {"v": "\ud800"}))


@pytest.mark.parametrize("value", [
    None, 2**64, -2**63 - 1, 2**64 - 1, {1: "a", None: "b", False: "c", 2.5: "d"}, Colour.RED,
    Side.LEFT, Text("t"), Number(1.5), Number("nan"), Dictionary(a=1),
    json.loads("[" * 300 + "]" * 300), datetime.datetime(2024, 1, 2), datetime.date(2024, 1, 2), Point(1),
    circular, {"s": {1, 2}}, b"x", 1.5,
])
def test_serialise_as_the_stdlib_encoder_did(value):
    """What orjson refuses, writes as null or writes where the stdlib refused goes to the stdlib encoder."""
    frame = CallResult("1", {"v": value})
    try:
        expected = STDLIB.encode(frame.to_list())
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            serialise(frame)
        return
    assert serialise(frame) == expected


def test_serialise_writes_enums_and_uuids_the_stdlib_refused():
    """orjson writes these itself, and no option turns that off; the stdlib refused them."""
    class Plain(enum.Enum):
        A = "a"

    frame = CallErrorFrame("1", "GenericError", "d", {"e": Plain.A, "u": uuid.UUID(int=1)})
    with pytest.raises(TypeError):
        STDLIB.encode(frame.to_list())
    assert serialise(frame) == '[4,"1","GenericError","d",{"e":"a","u":"00000000-0000-0000-0000-000000000001"}]'


def test_small_floats_are_written_in_orjson_s_style():
    """Under 1e-4 the text differs from repr's (the same double to any reader); from 1e-4 up it is repr's."""
    frame = CallResult("1", {"a": 1e-7, "b": 1e-5, "c": 1.5e-5, "d": 1e-4, "e": 1e16, "f": 0.1})
    assert serialise(frame) == '[3,"1",{"a":1e-7,"b":0.00001,"c":0.000015,"d":0.0001,"e":1e+16,"f":0.1}]'
    assert STDLIB.encode(frame.to_list()) == \
        '[3,"1",{"a":1e-07,"b":1e-05,"c":1.5e-05,"d":0.0001,"e":1e+16,"f":0.1}]'
    assert parse(serialise(frame), "2.0.1") == frame


# No None: a null sends the frame to the stdlib encoder (see serialise), and every example should
# take orjson's path; None is among test_serialise_as_the_stdlib_encoder_did's values.
json_scalars = (st.booleans() | st.integers(-2**63, 2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=30)


def has_small_float(value: Any) -> bool:
    if isinstance(value, float):
        return 0 < abs(value) < 1e-4
    if isinstance(value, dict):
        return any(has_small_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_small_float(v) for v in value)
    return False


@settings(max_examples=500, deadline=None, derandomize=True)
@given(payload=json_values, action=st.text(max_size=20))
def test_serialise_matches_the_stdlib_and_parse_reads_it_back(payload, action):
    for frame in (Call("id", action, payload), CallResult("id", payload),
                  CallErrorFrame("id", action, action, {"d": payload})):
        text = serialise(frame)
        expected = STDLIB.encode(frame.to_list())
        if has_small_float(payload):
            assert json.loads(text) == json.loads(expected)
        else:
            assert text == expected
        assert parse(text, "2.0.1") == frame
        assert parse(text.encode(), "2.0.1") == frame


def test_orjson_refuses_what_parse_must():
    """parse relies on these refusals of orjson's without asking for them: check the installed one."""
    for text in ("NaN", "Infinity", "-Infinity", "1e400", '"\\udc00"', "[1,]", "01", "'a'"):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)




@pytest.mark.parametrize("frame", [
    Call("id", "Authorize", {"idTag": "ÄÖ\u2028"}), CallResult("id", {"n": 1.25, "l": [1, None]}),
    CallErrorFrame("id", "GenericError", "x", {"a": [1]}),
])
def test_round_trip(frame):
    assert parse(serialise(frame), "2.0.1") == frame


def test_message_ids_are_unique_across_threads_and_at_most_36_characters():
    ids: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [new_message_id() for _ in range(5000)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(ids) == len(set(ids)) == 20000
    assert all(0 < len(i) <= 36 and i.isascii() for i in ids)
