"""The RPC layer over real loopback websockets: bad input, threads, queueing, timeouts, loss.

Our CSMS is fed raw frames from a plain websocket-client socket; our
ChargePoint talks to a raw server that lets the test write any frame.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import CancelledError
from datetime import datetime, timezone

import pytest
from support.raw import WAIT, RawClient, call_error

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.errors import (
    CallError,
    CallTimeout,
    ConnectionClosed,
    OCPPError,
    ProtocolError,
    ValidationError,
)

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

RPC = {"1.6": "FormationViolation", "2.0.1": "RpcFrameworkError", "2.1": "RpcFrameworkError"}
FORMAT = {"1.6": "FormationViolation", "2.0.1": "FormatViolation", "2.1": "FormatViolation"}
OCCURRENCE = {"1.6": "OccurenceConstraintViolation", "2.0.1": "OccurrenceConstraintViolation",
              "2.1": "OccurrenceConstraintViolation"}
UNKNOWN_TYPE = {"1.6": "FormationViolation", "2.0.1": "MessageTypeNotSupported",
                "2.1": "MessageTypeNotSupported"}


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def handlers(csms, m):
    """DataTransfer handlers on the CSMS that misbehave on request (by vendorId)."""
    gate = threading.Event()
    runs = []

    @csms.on(m.DataTransferRequest)
    def data_transfer(station, request):
        runs.append(request.vendor_id)
        kind = request.vendor_id
        if kind == "crash":
            raise RuntimeError("secret detail")
        if kind == "refuse":
            raise OCPPError("not for you", code="SecurityError", details={"why": "test"})
        if kind == "baddetails":
            raise OCPPError("odd", code="GenericError", details={"obj": object()})
        if kind == "format":
            raise OCPPError("bad format", code="FormatViolation")
        if kind == "timeout":
            raise CallTimeout("our own call timed out")
        if kind == "none":
            return None
        if kind == "wrongtype":
            return m.HeartbeatResponse(current_time=now())
        if kind == "invalid":
            return m.DataTransferResponse(status="NoSuchStatus")
        if kind == "block":
            assert gate.wait(WAIT)
        return m.DataTransferResponse(status="Accepted", data=request.data)

    @csms.on(m.HeartbeatRequest)
    def heartbeat(station, request):
        return m.HeartbeatResponse(current_time=now())

    return gate, runs


def dt(uid, vendor, data=None):
    payload = {"vendorId": vendor}
    if data is not None:
        payload["data"] = data
    return [2, uid, "DataTransfer", payload]


def assert_still_serves(client):
    reply = client.exchange([2, "alive", "Heartbeat", {}])
    assert reply[:2] == [3, "alive"] and "currentTime" in reply[2]


# -- the peer's bad input, against our CSMS --------------------------------------


@pytest.mark.parametrize("text", ["not json", "{}", "[]", '"x"', '[2,5,"Heartbeat",{}]',
                                  '[2,null,"Heartbeat",{}]', "[2]", '[2,"a","X",NaN]',
                                  '[2,"a","Heartbeat",{"v":Infinity}]'])
def test_unreadable_id_is_answered_with_minus_one(handlers, raw_client, version, text):
    assert call_error(raw_client.exchange(text)) == (4, "-1", RPC[version])
    assert_still_serves(raw_client)


def test_malformed_call_with_readable_id(handlers, raw_client, version):
    assert call_error(raw_client.exchange('[2,"a","Heartbeat"]')) == (4, "a", RPC[version])
    assert call_error(raw_client.exchange('[2,"b",7,{}]')) == (4, "b", RPC[version])
    assert call_error(raw_client.exchange('["2","c","Heartbeat",{}]')) == (4, "c", RPC[version])
    long_id = "x" * 37
    assert call_error(raw_client.exchange([2, long_id, "Heartbeat", {}])) == (4, long_id, RPC[version])
    assert_still_serves(raw_client)


def test_data_nested_too_deep_to_read_is_refused_not_logged_as_our_failure(
        handlers, raw_client, version, caplog):
    """JSON may nest 1024 deep; reading free-form data that deep runs out of stack. That is
    the peer's doing: a format error under the call's id, a warning, and the link stays up."""
    if version == "1.6":
        pytest.skip("1.6 DataTransfer data is a string: no free-form data to nest")
    deep = "[" * 1000 + "]" * 1000
    with caplog.at_level(logging.WARNING, logger="ocpp_sync"):
        reply = raw_client.exchange(f'[2,"deep","DataTransfer",{{"vendorId":"v","data":{deep}}}]')
    assert call_error(reply) == (4, "deep", "FormatViolation")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
    assert_still_serves(raw_client)


def test_unknown_message_type(handlers, raw_client, version):
    assert call_error(raw_client.exchange('[9,"a",{}]')) == (4, "a", UNKNOWN_TYPE[version])
    if version != "2.1":  # SEND and CALLRESULTERROR exist only in 2.1
        assert call_error(raw_client.exchange('[6,"b","Heartbeat",{}]')) == (4, "b", UNKNOWN_TYPE[version])
        assert call_error(raw_client.exchange('[5,"c","X","d",{}]')) == (4, "c", UNKNOWN_TYPE[version])
    assert_still_serves(raw_client)


def test_action_not_in_version_is_not_implemented_and_wrong_direction_not_supported(handlers, raw_client,
                                                                                   version):
    """OCPP-J 1.6 4.2.3 / 2.0.1 Part 4 4.3: NotImplemented is an action the receiver does not know,
    NotSupported one it recognises but does not support (here: one that never comes this way)."""
    assert call_error(raw_client.exchange([2, "a", "NoSuchAction", {}])) == (4, "a", "NotImplemented")
    # Reset goes from the CSMS to the station, never the other way.
    assert call_error(raw_client.exchange([2, "b", "Reset", {"type": "Soft"}])) == (4, "b", "NotSupported")
    if version != "2.1":
        assert call_error(raw_client.exchange([2, "c", "NotifyPeriodicEventStream", {}])) == (
            4, "c", "NotImplemented")
    assert_still_serves(raw_client)


def test_action_without_handler_is_not_supported(handlers, raw_client):
    assert call_error(raw_client.exchange([2, "a", "Authorize", {}])) == (4, "a", "NotSupported")
    assert_still_serves(raw_client)


def test_invalid_payload_gets_the_validation_code(handlers, raw_client, version):
    gate, runs = handlers
    cases = [
        ([2, "a", "DataTransfer", {}], OCCURRENCE[version]),
        ([2, "b", "DataTransfer", {"vendorId": 5}], "TypeConstraintViolation"),
        ([2, "c", "DataTransfer", {"vendorId": "x" * 256}], "PropertyConstraintViolation"),
        ([2, "d", "DataTransfer", {"vendorId": "x", "bogus": 1}], FORMAT[version]),
        ([2, "e", "DataTransfer", []], FORMAT[version]),
    ]
    for frame, code in cases:
        assert call_error(raw_client.exchange(frame)) == (4, frame[1], code)
    assert runs == []
    assert_still_serves(raw_client)


def test_handler_exception_is_internal_error_without_leaking(handlers, raw_client, caplog):
    with caplog.at_level(logging.ERROR, logger="ocpp_sync.connection"):
        reply = raw_client.exchange(dt("a", "crash"))
    assert call_error(reply) == (4, "a", "InternalError")
    assert "secret" not in reply[3] and "Traceback" not in reply[3] and len(reply[3]) < 100
    assert any("secret detail" in (r.exc_text or "") for r in caplog.records)
    assert_still_serves(raw_client)


def test_handler_ocpp_error_gives_its_code(handlers, raw_client, version):
    reply = raw_client.exchange(dt("a", "refuse"))
    assert reply == [4, "a", "SecurityError", "not for you", {"why": "test"}]
    # A library error whose code OCPP does not define is no use to the peer.
    assert call_error(raw_client.exchange(dt("b", "timeout"))) == (4, "b", "InternalError")
    assert raw_client.exchange(dt("c", "baddetails")) == [4, "c", "GenericError", "odd", {}]
    # Codes are spelled as the connection's version spells them.
    assert call_error(raw_client.exchange(dt("d", "format"))) == (4, "d", FORMAT[version])


@pytest.mark.parametrize("kind", ["none", "wrongtype", "invalid"])
def test_invalid_handler_response_is_internal_error(handlers, raw_client, kind):
    assert call_error(raw_client.exchange(dt("a", kind))) == (4, "a", "InternalError")
    assert_still_serves(raw_client)


def test_duplicate_id_while_handling_is_refused_and_not_run_twice(handlers, raw_client, version):
    gate, runs = handlers
    raw_client.send(dt("dup", "block", "first"))
    assert call_error(raw_client.exchange(dt("dup", "echo", "second"))) == (4, "dup", RPC[version])
    gate.set()
    assert raw_client.receive() == [3, "dup", {"status": "Accepted", "data": "first"}]
    assert runs == ["block"]
    # Once answered, the id may be used again.
    assert raw_client.exchange(dt("dup", "echo", "third")) == [3, "dup", {"status": "Accepted",
                                                                         "data": "third"}]


def test_responses_are_never_answered_with_errors(handlers, raw_client, version):
    # Unknown or malformed results and errors for calls we never made: dropped quietly
    # (answering an error with an error could loop between two peers).
    frames = ['[3,"nobody",{}]', '[4,"nobody","GenericError","",{}]', '[4,"x",5]',
              '[4,"x","GenericError",null,{}]']
    if version == "2.1":  # the peer refusing one of our results, well formed or not
        frames += ['[5,"x","FormatViolation","bad",{}]', '[5,"x"]']
    for frame in frames:
        raw_client.send(frame)
    assert_still_serves(raw_client)


def test_malformed_result_is_answered(handlers, raw_client, version):
    reply = raw_client.exchange('[3,"r"]')
    expected_type = 5 if version == "2.1" else 4
    assert reply[:3] == [expected_type, "r", RPC[version]]


def test_send_frame_in_2_1(csms, version, m):
    if version != "2.1":
        pytest.skip("SEND exists only in 2.1")
    got = []
    arrived = threading.Event()

    @csms.on(m.NotifyPeriodicEventStreamRequest)
    def stream(station, request):
        got.append(request)
        arrived.set()

    @csms.on(m.HeartbeatRequest)
    def heartbeat(station, request):
        return m.HeartbeatResponse(current_time=now())

    cp = ChargePoint("CP_S", f"ws://127.0.0.1:{csms.port}", version=version, timeout=WAIT)
    with cp:
        result = cp.send(m.NotifyPeriodicEventStreamRequest(
            id=1, pending=0, basetime=now(), data=[m.StreamDataElementType(t=0.5, v="1")]))
        assert result is None
        assert arrived.wait(WAIT)
        assert got[0].id == 1
    with pytest.raises(ConnectionClosed):
        cp.send(m.NotifyPeriodicEventStreamRequest(
            id=2, pending=0, basetime=now(), data=[m.StreamDataElementType(t=0.5, v="1")]))
    # No answer is ever sent to a SEND, not even an error.
    client = RawClient(csms.port, "RAW_S", version)
    try:
        client.send([6, "s1", "Authorize", {}])
        client.send([6, "s2", "NoSuchAction", {}])
        assert_still_serves(client)
    finally:
        client.close()


# -- our ChargePoint against a raw server ----------------------------------------------


def test_call_error_from_peer_raises_call_error(linked, m):
    cp, peer = linked
    future = cp.send_async(m.HeartbeatRequest())
    call = peer.receive()
    assert call[0] == 2 and call[2] == "Heartbeat" and call[3] == {}
    assert isinstance(call[1], str) and len(call[1]) <= 36
    peer.send([4, call[1], "GenericError", "nope", {"a": 1}])
    with pytest.raises(CallError) as err:
        future.result(WAIT)
    assert (err.value.code, err.value.description, err.value.details) == ("GenericError", "nope",
                                                                          {"a": 1})


def test_a_response_nested_too_deep_fails_the_call_at_once(linked, m, version):
    if version == "1.6":
        pytest.skip("1.6 DataTransfer data is a string: no free-form data to nest")
    cp, peer = linked
    errors = []

    def call():
        try:
            cp.send(m.DataTransferRequest(vendor_id="v"), timeout=WAIT * 3)
        except Exception as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, name="test-caller")
    caller.start()
    request = peer.receive()
    deep = "[" * 1000 + "]" * 1000
    peer.send(f'[3,"{request[1]}",{{"status":"Accepted","data":{deep}}}]')
    caller.join(WAIT)   # well before the call's own timeout
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError), errors
    assert errors[0].code == "FormatViolation"


def test_timeout_then_late_response_is_dropped(linked, m, caplog):
    cp, peer = linked
    started = time.monotonic()
    with pytest.raises(CallTimeout) as err:
        cp.send(m.HeartbeatRequest(), timeout=0.3)
    assert isinstance(err.value, TimeoutError)
    assert 0.3 <= time.monotonic() - started < WAIT
    late = peer.receive()
    # The next call goes out although the first was never answered...
    future = cp.send_async(m.HeartbeatRequest())
    second = peer.receive()
    with caplog.at_level(logging.INFO, logger="ocpp_sync.connection"):
        # ...and the late answer to the first does not resolve it.
        peer.send([3, late[1], {"currentTime": "2020-01-01T00:00:00Z"}])
        peer.send([3, second[1], {"currentTime": "2030-01-01T00:00:00Z"}])
        assert future.result(WAIT).current_time.year == 2030
    assert any("late" in r.getMessage() and late[1] in r.getMessage() for r in caplog.records)


def test_send_async_times_out_without_a_waiter(linked, m):
    cp, peer = linked
    future = cp.send_async(m.HeartbeatRequest(), timeout=0.2)
    with pytest.raises(CallTimeout):
        future.result(WAIT)


def test_default_timeout_per_instance(raw_server, version, m):
    cp = ChargePoint("CP_T", raw_server.url, version=version, timeout=0.2)
    with cp:
        raw_server.accept()
        with pytest.raises(CallTimeout):
            cp.send(m.HeartbeatRequest())


def test_disconnect_fails_pending_and_queued_calls_at_once(linked, m):
    cp, peer = linked
    futures = [cp.send_async(m.HeartbeatRequest(), timeout=60) for _ in range(3)]
    errors = []

    def blocking():
        try:
            cp.send(m.HeartbeatRequest(), timeout=60)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocking)
    thread.start()
    peer.receive()  # the first call is on the wire, the others wait their turn
    started = time.monotonic()
    peer.close()
    for future in futures:
        with pytest.raises(ConnectionClosed):
            future.result(WAIT)
    thread.join(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed)
    assert isinstance(errors[0], ConnectionError)
    assert time.monotonic() - started < 5  # not after the 60 s timeout
    with pytest.raises(ConnectionClosed):
        cp.send(m.HeartbeatRequest())


def test_one_outstanding_call_fifo_from_eight_threads(linked, m):
    cp, peer = linked
    results = {}
    go = threading.Barrier(8)

    def worker(n):
        go.wait(WAIT)
        results[n] = cp.send(m.DataTransferRequest(vendor_id="v", data=str(n)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    seen = []
    for _ in range(8):
        call = peer.receive()
        # Nothing else may arrive while this call is unanswered.
        with pytest.raises(TimeoutError):
            peer.receive(timeout=0.05)
        seen.append(call[3]["data"])
        peer.send([3, call[1], {"status": "Accepted", "data": "re " + call[3]["data"]}])
    for thread in threads:
        thread.join(WAIT)
    assert sorted(seen) == [str(n) for n in range(8)]
    assert {n: r.data for n, r in results.items()} == {n: f"re {n}" for n in range(8)}


def test_queued_calls_go_out_in_fifo_order(linked, m):
    cp, peer = linked
    futures = [cp.send_async(m.DataTransferRequest(vendor_id="v", data=str(n))) for n in range(5)]
    for n in range(5):
        call = peer.receive()
        assert call[3]["data"] == str(n)
        peer.send([3, call[1], {"status": "Accepted"}])
    assert all(f.result(WAIT).status == "Accepted" for f in futures)


def test_cancelled_queued_call_is_never_sent(linked, m):
    cp, peer = linked
    first = cp.send_async(m.DataTransferRequest(vendor_id="v", data="1"))
    second = cp.send_async(m.DataTransferRequest(vendor_id="v", data="2"))
    third = cp.send_async(m.DataTransferRequest(vendor_id="v", data="3"))
    assert second.cancel()
    call = peer.receive()
    peer.send([3, call[1], {"status": "Accepted"}])
    call = peer.receive()
    assert call[3]["data"] == "3"
    peer.send([3, call[1], {"status": "Accepted"}])
    assert first.result(WAIT) and third.result(WAIT)
    with pytest.raises(CancelledError):
        second.result(0)


def test_invalid_result_from_peer_raises_validation_error(linked, m, version):
    cp, peer = linked
    future = cp.send_async(m.HeartbeatRequest())
    call = peer.receive()
    peer.send([3, call[1], {"currentTime": "yesterday"}])
    with pytest.raises(ValidationError) as err:
        future.result(WAIT)
    assert err.value.code == "TypeConstraintViolation"
    if version == "2.1":  # 2.1 tells the peer its CALLRESULT was refused
        assert peer.receive()[:3] == [5, call[1], "TypeConstraintViolation"]


def test_malformed_result_fails_the_call(linked, m, version):
    cp, peer = linked
    future = cp.send_async(m.HeartbeatRequest())
    call = peer.receive()
    peer.send(f'[3,"{call[1]}"]')
    with pytest.raises(ProtocolError):
        future.result(WAIT)
    assert peer.receive()[:3] == [5 if version == "2.1" else 4, call[1], RPC[version]]


def test_raw_server_bad_input_to_charge_point(linked, m, version):
    cp, peer = linked
    peer.send("garbage")
    assert call_error(peer.receive()) == (4, "-1", RPC[version])
    peer.send([2, "a", "BootNotification", {}])  # goes the other way
    assert call_error(peer.receive()) == (4, "a", "NotSupported")
    peer.send([2, "b", "ClearCache", {}])  # no handler on this charge point
    assert call_error(peer.receive()) == (4, "b", "NotSupported")


def test_handler_may_call_send_on_its_own_connection(linked, m):
    cp, peer = linked

    @cp.on(m.ClearCacheRequest)
    def clear_cache(request):
        reply = cp.send(m.DataTransferRequest(vendor_id="v", data="inner"))
        return m.ClearCacheResponse(status="Accepted" if reply.data == "ok" else "Rejected")

    peer.send([2, "outer", "ClearCache", {}])
    inner = peer.receive()
    assert inner[2] == "DataTransfer"
    peer.send([3, inner[1], {"status": "Accepted", "data": "ok"}])
    assert peer.receive() == [3, "outer", {"status": "Accepted"}]


def test_slow_handler_does_not_block_answers_to_our_calls(linked, m):
    cp, peer = linked
    release = threading.Event()

    @cp.on(m.ClearCacheRequest)
    def clear_cache(request):
        assert release.wait(WAIT)
        return m.ClearCacheResponse(status="Accepted")

    peer.send([2, "slow", "ClearCache", {}])
    future = cp.send_async(m.HeartbeatRequest())
    call = peer.receive()
    peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}])
    assert future.result(WAIT).current_time.year == 2030
    release.set()
    assert peer.receive() == [3, "slow", {"status": "Accepted"}]


def test_peer_calls_are_handled_in_order_one_at_a_time(linked, m):
    cp, peer = linked
    order = []
    active = []

    @cp.on(m.DataTransferRequest)
    def data_transfer(request):
        active.append(request.data)
        assert len(active) == 1
        order.append(request.data)
        active.remove(request.data)
        return m.DataTransferResponse(status="Accepted")

    for n in range(20):
        peer.send([2, f"c{n}", "DataTransfer", {"vendorId": "v", "data": str(n)}])
    answers = [peer.receive()[1] for _ in range(20)]
    assert answers == [f"c{n}" for n in range(20)]
    assert order == [str(n) for n in range(20)]


def test_frames_are_logged_at_debug(linked, m, caplog):
    cp, peer = linked
    with caplog.at_level(logging.DEBUG, logger="ocpp_sync.connection"):
        future = cp.send_async(m.HeartbeatRequest())
        call = peer.receive()
        peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}])
        future.result(WAIT)
    texts = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(call[1] in t and ">" in t and "Heartbeat" in t for t in texts)
    assert any(call[1] in t and "<" in t and "2030" in t for t in texts)


def test_frame_log_hides_station_passwords(linked, version, caplog):
    cp, peer = linked
    if version == "1.6":
        frame = [2, "pw", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "s3cret"}]
    else:
        frame = [2, "pw", "SetVariables", {"setVariableData": [{
            "attributeValue": "s3cret", "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"}}]}]
    with caplog.at_level(logging.DEBUG, logger="ocpp_sync.connection"):
        peer.send(frame)
        assert call_error(peer.receive()) == (4, "pw", "NotSupported")
    texts = [r.getMessage() for r in caplog.records]
    assert any("pw" in t and "<" in t for t in texts)
    assert not any("s3cret" in t for t in texts)


def test_blocking_send_from_the_reader_thread_is_refused(linked, m):
    cp, peer = linked
    outcome = []
    done = threading.Event()

    def callback(future):  # done-callbacks run in the reader thread
        try:
            cp.send(m.HeartbeatRequest())
        except Exception as exc:
            outcome.append(exc)
        done.set()

    future = cp.send_async(m.HeartbeatRequest())
    future.add_done_callback(callback)
    call = peer.receive()
    peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}])
    assert done.wait(WAIT)
    assert isinstance(outcome[0], RuntimeError)


def test_a_big_message_is_parsed_outside_the_turn(handlers, raw_client, version, monkeypatch):
    """Parsing a message near the size limit takes tens of milliseconds; inside the turnstile
    it would hold every other station's turn for that long (issue 16)."""
    from ocpp_sync.runtime import connection
    from ocpp_sync.scheduling.turnstile import Turnstile

    entered = []
    enter = Turnstile.enter
    monkeypatch.setattr(Turnstile, "enter", lambda self, first=False: (entered.append(first),
                                                                        enter(self, first=first)))
    big = "x" * connection._BIG_MESSAGE
    reply = raw_client.exchange(dt("big", "ACME", big))
    assert reply[:2] == [3, "big"]
    assert entered == []
    assert_still_serves(raw_client)
    assert entered   # a small message does take a turn
