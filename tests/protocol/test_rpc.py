"""The RPC rules of the protocol core, without a socket or a thread: text in, events out."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ocpp_sync import CallError, ConnectionClosed, OCPPError, ProtocolError, v16, v21, v201
from ocpp_sync.protocol.rpc import (
    CS,
    CSMS,
    MAX_QUEUED_PEER_BYTES,
    MAX_UNANSWERED_PEER_CALLS,
    CallAnswered,
    FrameRefused,
    Ignored,
    OutgoingCall,
    PeerCall,
    RpcState,
)

MODULES = {"1.6": v16, "2.0.1": v201, "2.1": v21}
RPC = {"1.6": "FormationViolation", "2.0.1": "RpcFrameworkError", "2.1": "RpcFrameworkError"}


def heartbeat_answer(module: Any) -> Any:
    return module.HeartbeatResponse(current_time="2026-12-03T08:00:00Z")  # type: ignore[arg-type]


def state(version: str, role: str = CSMS, handled: tuple[str, ...] = ("Heartbeat",), **kwargs: Any) -> RpcState:
    module = MODULES[version]
    classes = {module.REQUESTS[a] for a in handled}
    return RpcState(version, role, lambda cls: (lambda request: None) if cls in classes else None, **kwargs)


def our_call(rpc: RpcState, action: str = "ClearCache") -> OutgoingCall:
    unique_id, text, response_cls = rpc.frame_call(action, {})
    assert response_cls is not None
    return OutgoingCall(unique_id, action, text, response_cls)


def decoded(text: str | None) -> list[Any]:
    assert text is not None
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture(params=list(MODULES))
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_our_calls_go_out_one_at_a_time_in_order(version: str) -> None:
    rpc = state(version)
    first, second = our_call(rpc), our_call(rpc)
    assert rpc.submit(first) is first
    assert rpc.submit(second) is None          # waits: one outstanding CALL per direction
    event = rpc.receive(json.dumps([3, first.unique_id, {"status": "Accepted"}]))
    assert isinstance(event, CallAnswered) and event.call is first and event.error is None
    assert event.response.status == "Accepted"
    assert event.write_next is second and rpc.current is second


def test_an_expired_call_lets_the_next_go_and_its_late_answer_is_dropped(version: str) -> None:
    rpc = state(version)
    first, second = our_call(rpc), our_call(rpc)
    rpc.submit(first)
    rpc.submit(second)
    assert rpc.expire(first) is second
    assert isinstance(rpc.receive(json.dumps([3, first.unique_id, {"status": "Accepted"}])), Ignored)
    assert rpc.current is second


def test_a_cancelled_call_is_never_written() -> None:
    class Cancelled(OutgoingCall):
        def start(self) -> bool:
            return False

    rpc = state("1.6")
    first = our_call(rpc)
    rpc.submit(first)
    unique_id, text, cls = rpc.frame_call("ClearCache", {})
    assert cls is not None
    rpc.submit(Cancelled(unique_id, "ClearCache", text, cls))
    event = rpc.receive(json.dumps([3, first.unique_id, {"status": "Accepted"}]))
    assert isinstance(event, CallAnswered) and event.write_next is None and rpc.current is None


def test_a_callerror_settles_our_call_with_the_peers_code(version: str) -> None:
    rpc = state(version)
    call = our_call(rpc)
    rpc.submit(call)
    event = rpc.receive(json.dumps([4, call.unique_id, "NotSupported", "no", {"k": 1}]))
    assert isinstance(event, CallAnswered) and isinstance(event.error, CallError)
    assert (event.error.code, event.error.details) == ("NotSupported", {"k": 1})


def test_an_unreadable_answer_fails_our_call_and_is_answered_only_in_2_1(version: str) -> None:
    rpc = state(version)
    call = our_call(rpc)
    rpc.submit(call)
    event = rpc.receive(json.dumps([3, call.unique_id, {"status": "Perhaps"}]))
    assert isinstance(event, CallAnswered) and event.error is not None
    assert event.error.code == "PropertyConstraintViolation"
    assert (event.reply is not None) == (version == "2.1")
    if event.reply is not None:
        assert decoded(event.reply)[:3] == [5, call.unique_id, "PropertyConstraintViolation"]


def test_a_malformed_answer_fails_our_call(version: str) -> None:
    rpc = state(version)
    call = our_call(rpc)
    rpc.submit(call)
    event = rpc.receive(f'[3,"{call.unique_id}"]')
    assert isinstance(event, FrameRefused) and event.failed is call
    assert isinstance(event.error, ProtocolError)
    assert decoded(event.reply)[:3] == [5 if version == "2.1" else 4, call.unique_id, RPC[version]]


def test_a_malformed_error_is_never_answered_with_an_error(version: str) -> None:
    rpc = state(version)
    event = rpc.receive('[4,"a","NotSupported"]')
    assert isinstance(event, FrameRefused) and event.reply is None


def test_codes_for_unknown_unsupported_and_unhandled_actions(version: str) -> None:
    """OCPP-J 1.6 4.2.3, 2.0.1 Part 4 4.3: NotImplemented for an unknown action, NotSupported
    for a known one that is not supported here (wrong direction, no handler)."""
    rpc = state(version)
    assert decoded(rpc.receive('[2,"a","NoSuchAction",{}]').reply)[2] == "NotImplemented"  # type: ignore[union-attr]
    assert decoded(rpc.receive('[2,"b","Reset",{"type":"Soft"}]').reply)[2] == "NotSupported"  # type: ignore[union-attr]
    assert decoded(rpc.receive('[2,"c","Authorize",{"idTag":"X"}]' if version == "1.6" else
                               '[2,"c","Authorize",{"idToken":{"idToken":"X","type":"Local"}}]'
                               ).reply)[2] == "NotSupported"  # type: ignore[union-attr]


def test_a_call_that_reuses_a_live_id_is_refused_and_not_run_twice(version: str) -> None:
    rpc = state(version)
    first = rpc.receive('[2,"dup","Heartbeat",{}]')
    assert isinstance(first, PeerCall)
    again = rpc.receive('[2,"dup","Heartbeat",{}]')
    assert isinstance(again, FrameRefused) and decoded(again.reply)[:3] == [4, "dup", RPC[version]]
    rpc.answer(first, heartbeat_answer(MODULES[version]))
    assert isinstance(rpc.receive('[2,"dup","Heartbeat",{}]'), PeerCall)   # answered: free again


def test_answers_are_checked_and_codes_respelled_for_the_version(version: str) -> None:
    rpc = state(version)
    call = rpc.receive('[2,"a","Heartbeat",{}]')
    assert isinstance(call, PeerCall)
    assert decoded(rpc.answer(call, "not a response"))[:3] == [4, "a", "InternalError"]
    call = rpc.receive('[2,"b","Heartbeat",{}]')
    assert isinstance(call, PeerCall)
    frame = decoded(rpc.answer_error(call, OCPPError("bad", code="FormatViolation")))
    assert frame[2] == ("FormationViolation" if version == "1.6" else "FormatViolation")
    call = rpc.receive('[2,"c","Heartbeat",{}]')
    assert isinstance(call, PeerCall)
    assert decoded(rpc.answer_error(call, KeyError("secret")))[2:4] == ["InternalError",
                                                                         "the Heartbeat handler failed"]


def test_the_bad_frame_budget_asks_for_1008(version: str) -> None:
    rpc = state(version, max_bad_messages=3)
    assert rpc.receive("garbage").close is None  # type: ignore[union-attr]
    assert rpc.receive("garbage").close is None  # type: ignore[union-attr]
    assert rpc.receive("garbage").close == 1008  # type: ignore[union-attr]


def test_a_good_frame_resets_the_bad_frame_budget(version: str) -> None:
    rpc = state(version, max_bad_messages=2)
    rpc.receive("garbage")
    rpc.receive('[2,"a","Heartbeat",{}]')
    assert rpc.receive("garbage").close is None  # type: ignore[union-attr]


def test_a_peer_that_piles_up_unanswered_calls_is_closed(version: str) -> None:
    rpc = state(version)
    calls = [rpc.receive(f'[2,"c{n}","Heartbeat",{{}}]') for n in range(MAX_UNANSWERED_PEER_CALLS)]
    assert all(isinstance(c, PeerCall) for c in calls)
    over = rpc.receive('[2,"one-more","Heartbeat",{}]')
    assert isinstance(over, FrameRefused) and over.close == 1008 and over.reply is None
    rpc.answer(calls[0], heartbeat_answer(MODULES[version]))
    assert isinstance(rpc.receive('[2,"now-fine","Heartbeat",{}]'), PeerCall)


def test_queued_peer_calls_are_bounded_in_bytes_but_one_of_any_size_is_taken() -> None:
    rpc = state("2.0.1", handled=("DataTransfer",))
    big = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * MAX_QUEUED_PEER_BYTES}])
    assert isinstance(rpc.receive(big), PeerCall)
    over = rpc.receive('[2,"next","DataTransfer",{"vendorId":"v"}]')
    assert isinstance(over, FrameRefused) and over.close == 1008


def test_nothing_is_submitted_once_closing(version: str) -> None:
    rpc = state(version)
    call = our_call(rpc)
    rpc.submit(call)
    assert rpc.fail_all() == [call]
    with pytest.raises(ConnectionClosed):
        rpc.submit(our_call(rpc))


def test_a_send_is_never_answered_even_when_refused() -> None:
    rpc = state("2.1", role=CS, handled=())
    assert isinstance(rpc.receive('[6,"s","NotifyPeriodicEventStream",{}]'), Ignored)


# Preconditions are named functions: hypothesis reads a lambda's source to describe it, which
# costs more than the whole state machine here.
def _a_call_is_current(machine: Interleavings) -> bool:
    return machine.rpc.current is not None


def _a_call_has_expired(machine: Interleavings) -> bool:
    return bool(machine.expired)


def _the_peer_may_call(machine: Interleavings) -> bool:
    return len(machine.peer_calls) < MAX_UNANSWERED_PEER_CALLS


def _a_peer_call_waits(machine: Interleavings) -> bool:
    return bool(machine.peer_calls)


@settings(max_examples=200, stateful_step_count=40, deadline=None)
class Interleavings(RuleBasedStateMachine):
    """Our calls, the peer's calls, answers (in time, late, for no call), timeouts and
    cancellations in any order: the FIFO holds, and every call is settled once, by its own answer."""

    @initialize(version=st.sampled_from(list(MODULES)))
    def start(self, version: str) -> None:
        self.module = MODULES[version]
        self.rpc = state(version)
        self.written: list[OutgoingCall] = []      # in the order the core let them go out
        self.submitted: list[OutgoingCall] = []
        self.settled: dict[str, str] = {}          # id -> how
        self.expired: set[str] = set()
        self.peer_calls: list[PeerCall] = []
        self.answers: dict[str, str] = {}
        self.counter = 0

    def _write(self, call: OutgoingCall | None) -> None:
        if call is not None:
            assert call not in self.written
            self.written.append(call)

    @rule()
    def we_call(self) -> None:
        call = our_call(self.rpc)
        self.submitted.append(call)
        self._write(self.rpc.submit(call))

    @precondition(_a_call_is_current)
    @rule(accepted=st.booleans())
    def peer_answers_current(self, accepted: bool) -> None:
        call = self.rpc.current
        assert call is not None
        text = json.dumps([3, call.unique_id, {"status": "Accepted"}]) if accepted else \
            json.dumps([4, call.unique_id, "GenericError", "", {}])
        event = self.rpc.receive(text)
        assert isinstance(event, CallAnswered) and event.call is call
        assert call.unique_id not in self.settled
        self.settled[call.unique_id] = "answered" if accepted else "error"
        assert (event.error is None) == accepted
        self._write(event.write_next)

    @precondition(_a_call_is_current)
    @rule()
    def current_times_out(self) -> None:
        call = self.rpc.current
        assert call is not None
        self.expired.add(call.unique_id)
        self.settled[call.unique_id] = "expired"
        self._write(self.rpc.expire(call))

    @precondition(_a_call_has_expired)
    @rule(data=st.data())
    def a_late_answer_comes(self, data: st.DataObject) -> None:
        unique_id = data.draw(st.sampled_from(sorted(self.expired)))
        assert isinstance(self.rpc.receive(json.dumps([3, unique_id, {"status": "Accepted"}])), Ignored)

    @rule()
    def an_answer_for_no_call(self) -> None:
        assert isinstance(self.rpc.receive('[3,"nobody-asked",{"status":"Accepted"}]'), Ignored)

    @precondition(_the_peer_may_call)
    @rule()
    def peer_calls(self) -> None:
        self.counter += 1
        event = self.rpc.receive(f'[2,"p{self.counter}","Heartbeat",{{}}]')
        assert isinstance(event, PeerCall) and event.unique_id == f"p{self.counter}"
        self.peer_calls.append(event)

    @precondition(_a_peer_call_waits)
    @rule(data=st.data())
    def we_answer_a_peer_call(self, data: st.DataObject) -> None:
        call = self.peer_calls.pop(data.draw(st.integers(0, len(self.peer_calls) - 1)))
        frame = decoded(self.rpc.answer(call, heartbeat_answer(self.module)))
        assert frame[:2] == [3, call.unique_id]

    @invariant()
    def written_in_submission_order_one_at_a_time(self) -> None:
        if not hasattr(self, "rpc"):
            return
        order = [c for c in self.submitted if c in self.written]
        assert order == self.written
        unsettled_written = [c for c in self.written if c.unique_id not in self.settled]
        assert len(unsettled_written) <= 1
        if unsettled_written:
            assert self.rpc.current is unsettled_written[0]


TestInterleavings = Interleavings.TestCase


def test_a_lone_surrogate_is_a_validation_error_before_anything_is_sent(version: str) -> None:
    """It passes to_payload (Python strings may hold one) but no peer can read it."""
    from ocpp_sync import ValidationError, to_payload
    rpc = state(version)
    request = MODULES[version].DataTransferRequest(vendor_id="ACME\ud800")
    with pytest.raises(ValidationError):
        rpc.frame_call("DataTransfer", to_payload(request))


def test_an_answer_with_a_lone_surrogate_becomes_an_internal_error(version: str) -> None:
    rpc = state(version, handled=("DataTransfer",))
    call = rpc.receive('[2,"a","DataTransfer",{"vendorId":"v"}]')
    assert isinstance(call, PeerCall)
    response = MODULES[version].DataTransferResponse(status="Accepted", data="x\udfff" if version == "1.6"
                                                     else {"k": "x\udfff"})
    assert decoded(rpc.answer(call, response))[:3] == [4, "a", "InternalError"]


@pytest.mark.parametrize("lenient", [False, True])
def test_a_null_in_an_optional_field_is_read_as_absent_in_both_modes(lenient: bool) -> None:
    from ocpp_sync import ValidationError, from_payload
    payload = {"currentTime": "2026-12-03T08:00:00Z", "interval": 5, "status": "Accepted", "statusInfo": None}
    assert from_payload(v201.BootNotificationResponse, payload, lenient=lenient).status_info is None
    with pytest.raises(ValidationError) as caught:   # null in a required field stays an error
        from_payload(v201.BootNotificationResponse, {**payload, "interval": None}, lenient=lenient)
    assert caught.value.code == "TypeConstraintViolation"
