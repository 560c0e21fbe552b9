"""OCPP-J frame parsing and serialising, without a network."""
from __future__ import annotations

import json
import threading

import pytest

from ocpp_sync._framing import (
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
    '[2,"a","X",{"v":-Infinity}]', '[2,"a","X",{"v":1e999}]', "[" * 100000,
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


def test_serialise_refuses_nan():
    with pytest.raises(ValueError):
        serialise(CallResult("1", {"v": float("nan")}))


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
