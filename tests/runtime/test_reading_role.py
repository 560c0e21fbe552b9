"""Reading is a role: a blocking send() reads its own answer when nobody else reads,
and a worker that reads a peer's call runs its handler itself.

These tests pin what that must not break: frames nobody asked for still get
read when a run of calls ends, a peer's call that arrives while a caller reads
is handled, the socket is still read while a handler runs long, and close()
ends a caller that is reading.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
import websocket
from support.raw import WAIT

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.runtime import connection as _connection

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def heartbeat_answer(call):
    return [3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}]


def answer_clear_cache(cp, m, handled_in=None):
    """Answer the peer's ClearCache; ``handled_in`` collects the names of the threads that did."""
    @cp.on(m.ClearCacheRequest)
    def clear_cache(request):
        if handled_in is not None:
            handled_in.append(threading.current_thread().name)
        return m.ClearCacheResponse(status="Accepted")


def heartbeat_caller(cp, m):
    """A thread (not started) that makes one blocking Heartbeat call, and the event it sets
    once the call has returned."""
    returned = threading.Event()

    def call():
        cp.send(m.HeartbeatRequest(), timeout=WAIT * 3)
        returned.set()

    return threading.Thread(target=call, name="test-caller"), returned


def answer_heartbeats(peer, count):
    """Answer ``count`` Heartbeat calls from a thread of its own; returns that thread."""
    def run():
        for _ in range(count):
            peer.send(heartbeat_answer(peer.receive()))

    thread = threading.Thread(target=run, name="test-peer", daemon=True)
    thread.start()
    return thread


def run_of_calls(cp, peer, m, count):
    """``count`` sequential Heartbeats, each answered by the peer."""
    peer_thread = answer_heartbeats(peer, count)
    for _ in range(count):
        cp.send(m.HeartbeatRequest())
    peer_thread.join(WAIT)


def start_unanswered_call(cp, peer, m):
    """A blocking call from a thread of its own, on the wire and never answered.

    Returns the thread and the list its exception lands in.
    """
    errors = []

    def unanswered():
        try:
            cp.send(m.HeartbeatRequest(), timeout=60)
        except Exception as exc:
            errors.append(exc)

    caller = threading.Thread(target=unanswered, name="test-caller")
    caller.start()
    peer.receive()   # the call is out; its caller (or the reader) waits for the answer
    return caller, errors


def record_readers(cp):
    """The names of the threads that read each message from now on (a list that grows)."""
    transport = cp._live()._transport
    readers = []
    receive = transport.receive

    def recording_receive(timeout=None):
        text = receive(timeout)
        if text is not None:
            readers.append(threading.current_thread().name)
        return text

    transport.receive = recording_receive
    return readers


def test_a_sequential_caller_reads_its_own_answers(linked, m):
    cp, peer = linked
    readers = record_readers(cp)
    run_of_calls(cp, peer, m, 20)
    # The first answer is read by the reader thread, blocked in receive() already; after
    # it the caller should find the socket free. A heavily loaded machine can delay the
    # caller past the reader's grace period now and then, hence not all 19.
    assert readers.count(threading.current_thread().name) >= 5, readers


def test_a_peer_call_after_a_run_of_calls_is_still_answered(linked, m):
    cp, peer = linked
    answer_clear_cache(cp, m)
    run_of_calls(cp, peer, m, 10)
    # Nobody calls any more: the reader thread must take the socket back by itself.
    peer.send([2, "after", "ClearCache", {}])
    assert peer.receive() == [3, "after", {"status": "Accepted"}]


def test_a_peer_call_that_comes_while_a_caller_reads_is_handled(linked, m):
    cp, peer = linked
    answer_clear_cache(cp, m)
    run_of_calls(cp, peer, m, 5)
    result = []
    caller = threading.Thread(target=lambda: result.append(cp.send(m.HeartbeatRequest())),
                              name="test-caller")
    caller.start()
    call = peer.receive()
    # The station's call waits for its answer until the station has answered ours.
    peer.send([2, "meanwhile", "ClearCache", {}])
    assert peer.receive() == [3, "meanwhile", {"status": "Accepted"}]
    peer.send(heartbeat_answer(call))
    caller.join(WAIT)
    assert result and result[0].current_time.year == 2030


def test_a_peer_call_is_handled_by_the_thread_that_read_it(linked, m):
    cp, peer = linked
    readers, handlers = record_readers(cp), []
    answer_clear_cache(cp, m, handlers)
    for n in range(10):
        peer.send([2, f"c{n}", "ClearCache", {}])
        assert peer.receive() == [3, f"c{n}", {"status": "Accepted"}]
    # No hand-off to another thread between reading a call and answering it. The first
    # call was read by a receive() that began before the recording did.
    assert len(handlers) == 10 and handlers[1:] == readers, (readers, handlers)
    assert all("-worker" in name for name in handlers), handlers


def test_pings_are_answered_while_a_handler_runs_long(csms, raw_client, m):
    """The worker that runs a handler has left the socket: the other one must read it."""
    entered, release = threading.Event(), threading.Event()

    @csms.on(m.HeartbeatRequest)
    def heartbeat(station, request):
        entered.set()
        release.wait(WAIT)
        return m.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    raw_client.send([2, "slow", "Heartbeat", {}])
    assert entered.wait(WAIT)
    raw_client.ws.ping(b"still there?")
    opcode, data = raw_client.ws.recv_data(control_frame=True)
    assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"still there?")
    assert not release.is_set()
    release.set()
    assert raw_client.receive()[:2] == [3, "slow"]


def hold_until(condition):
    """Widen a race from inside the library: wait (bounded) until the other side has acted."""
    deadline = time.monotonic() + WAIT / 2
    tick = threading.Event()
    while not condition() and time.monotonic() < deadline:
        tick.wait(0.01)


def answered_in_time(caller, returned, peer):
    """Start the caller, answer its call at once: it must return long before its deadline."""
    caller.start()
    peer.send(heartbeat_answer(peer.receive()))
    assert returned.wait(WAIT), "the call returned only at its deadline"
    caller.join(WAIT)


def test_a_caller_woken_by_its_answer_does_not_go_on_to_read(linked, m, monkeypatch):
    """Another thread read the answer and settles the call: the future first, then the
    flag. A caller that wakes in between must return, not take the socket and wait
    there for its deadline. The gap is widened here until the caller has acted."""
    cp, peer = linked
    connection = cp._live()
    caller, returned = heartbeat_caller(cp, m)
    settle = _connection._settle

    def settle_with_a_gap(pending, result=None, exc=None):
        settle(pending, result, exc)
        if pending.blocking and threading.current_thread() is not caller:
            pending.settled = False
            hold_until(lambda: connection._reading_thread == caller.ident or returned.is_set())
            pending.settled = True

    monkeypatch.setattr(_connection, "_settle", settle_with_a_gap)
    answered_in_time(caller, returned, peer)   # read by a worker: it held the socket already


def test_a_worker_leaves_the_socket_only_once_the_answer_is_settled(linked, m, monkeypatch):
    """The answer comes before its caller has looked for the socket. Had the worker that
    read it left the socket before settling the call, the caller would take the socket
    and wait there for its deadline."""
    cp, peer = linked
    connection = cp._live()
    caller, returned = heartbeat_caller(cp, m)
    answer_read = threading.Event()
    settle, write_call = _connection._settle, connection._write_call

    def write_then_dawdle(pending):
        write_call(pending)
        if threading.current_thread() is caller:
            answer_read.wait(WAIT)

    def settle_once_the_caller_has_looked(pending, result=None, exc=None):
        if pending.blocking and threading.current_thread() is not caller:
            answer_read.set()
            hold_until(lambda: connection._reading_thread == caller.ident
                       or connection._waiting_callers > 0)
        settle(pending, result, exc)

    monkeypatch.setattr(connection, "_write_call", write_then_dawdle)
    monkeypatch.setattr(_connection, "_settle", settle_once_the_caller_has_looked)
    answered_in_time(caller, returned, peer)


def test_close_ends_a_caller_that_is_reading(linked, m):
    cp, peer = linked
    run_of_calls(cp, peer, m, 3)
    connection = cp._live()
    caller, errors = start_unanswered_call(cp, peer, m)
    started = time.monotonic()
    connection.close()   # not cp.close(), which would give the call a while to be answered
    caller.join(WAIT)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed)
    assert time.monotonic() - started < WAIT


def test_the_peer_closing_ends_a_caller_that_is_reading(linked, m):
    cp, peer = linked
    run_of_calls(cp, peer, m, 3)
    caller, errors = start_unanswered_call(cp, peer, m)
    peer.close()
    caller.join(WAIT)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosed)
    assert cp._connection.wait_closed(WAIT)


def test_calls_both_ways_from_many_threads_are_all_answered(csms, m, version):
    """Blocking callers, async callers and the CSMS's own calls, all at once on one connection:
    whoever holds the reading role, every call gets its own answer and nothing hangs."""

    @csms.on(m.HeartbeatRequest)
    def heartbeat(station, request):
        return m.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    @csms.on(m.DataTransferRequest)
    def data_transfer(station, request):
        return m.DataTransferResponse(status="Accepted", data=request.data)

    cp = ChargePoint("CP_1", f"ws://127.0.0.1:{csms.port}/ocpp", version=version, timeout=WAIT)

    @cp.on(m.DataTransferRequest)
    def station_data_transfer(request):
        return m.DataTransferResponse(status="Accepted", data="cp " + request.data)

    errors: list[BaseException] = []
    rounds = 200

    def blocking(n):
        try:
            for i in range(rounds):
                reply = cp.send(m.DataTransferRequest(vendor_id="v", data=f"{n}-{i}"))
                assert reply.data == f"{n}-{i}"
        except BaseException as exc:
            errors.append(exc)

    def asynchronous(n):
        try:
            futures = [(i, cp.send_async(m.DataTransferRequest(vendor_id="v", data=f"a{n}-{i}")))
                       for i in range(rounds)]
            for i, future in futures:
                assert future.result(WAIT).data == f"a{n}-{i}"
        except BaseException as exc:
            errors.append(exc)

    def from_the_csms(station):
        try:
            for i in range(rounds):
                reply = station.send(m.DataTransferRequest(vendor_id="v", data=f"c{i}"))
                assert reply.data == f"cp c{i}"
        except BaseException as exc:
            errors.append(exc)

    with cp:
        station = csms.wait_for_station("CP_1", timeout=WAIT)
        threads = [threading.Thread(target=blocking, args=(n,), name=f"test-blocking-{n}")
                   for n in range(4)]
        threads += [threading.Thread(target=asynchronous, args=(n,), name=f"test-async-{n}")
                    for n in range(2)]
        threads.append(threading.Thread(target=from_the_csms, args=(station,), name="test-csms"))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 6)
        assert not [t.name for t in threads if t.is_alive()]
    assert not errors, errors[:3]
