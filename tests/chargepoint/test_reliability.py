"""Reconnect, keepalive, the offline queue and the CSMS's limits, over real loopback sockets.

A FaultProxy (tests/faultproxy.py) sits between each charge point and the CSMS
and breaks the link on demand: drop, stall, cut mid-frame, refuse.
"""
from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from itertools import islice
from typing import Any

import pytest
import websocket
from support.faultproxy import DOWN, FaultProxy

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.chargepoint.outbox import QueuedCall
from ocpp_sync.protocol.retry import BackOff, TransactionRetry
from ocpp_sync.websocket import HandshakeError

WAIT = 10.0
FAST = BackOff(wait_minimum=0.05, random_range=0.05, repeat_times=2)

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def now() -> datetime:
    return datetime.now(timezone.utc)


class Recorder:
    """What the CSMS received, in order, with a condition to wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: list[tuple[Any, ...]] = []

    def add(self, item: tuple[Any, ...]) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple[Any, ...]]], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.items), timeout)

    def snapshot(self) -> list[tuple[Any, ...]]:
        with self.cond:
            return list(self.items)


def queued(cp: ocpp_sync.ChargePoint, message: Any) -> QueuedCall:
    """send() a transaction message that cannot be answered now: it raises Queued with the handle."""
    with pytest.raises(ocpp_sync.Queued) as raised:
        cp.send(message)
    handle = raised.value.handle
    assert isinstance(handle, QueuedCall) and handle.action in str(raised.value)
    return handle


def serve_transactions(csms: ocpp_sync.CSMS, seen: Recorder, first_id: int = 100) -> None:
    ids = iter(range(first_id, first_id + 1000))

    @csms.on(v16.BootNotificationRequest)
    def boot(station, request):
        return v16.BootNotificationResponse(current_time=now(), interval=300, status="Accepted")

    @csms.on(v16.HeartbeatRequest)
    def heartbeat16(station, request):
        return v16.HeartbeatResponse(current_time=now())

    @csms.on(v201.HeartbeatRequest)
    def heartbeat201(station, request):
        return v201.HeartbeatResponse(current_time=now())

    @csms.on(v16.StartTransactionRequest)
    def start(station, request):
        transaction_id = next(ids)
        seen.add(("Start", request.meter_start, transaction_id))
        return v16.StartTransactionResponse(transaction_id=transaction_id,
                                            id_tag_info=v16.IdTagInfo(status="Accepted"))

    @csms.on(v16.MeterValuesRequest)
    def meter(station, request):
        seen.add(("Meter", request.meter_value[0].sampled_value[0].value, request.transaction_id))
        return v16.MeterValuesResponse()

    @csms.on(v16.StopTransactionRequest)
    def stop(station, request):
        seen.add(("Stop", request.meter_stop, request.transaction_id))
        return v16.StopTransactionResponse()

    @csms.on(v201.TransactionEventRequest)
    def event(station, request):
        seen.add((request.event_type, request.seq_no, request.transaction_info.transaction_id,
                  bool(request.offline)))
        return v201.TransactionEventResponse()


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


@pytest.fixture
def csms(seen: Recorder) -> Iterator[ocpp_sync.CSMS]:
    server = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=WAIT)
    serve_transactions(server, seen)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def proxy(csms: ocpp_sync.CSMS) -> Iterator[FaultProxy]:
    with FaultProxy(csms.port) as fault_proxy:
        yield fault_proxy


class Watched(ocpp_sync.ChargePoint):
    """A charge point whose link events can be waited on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("timeout", WAIT)
        kwargs.setdefault("ping_interval", None)
        super().__init__(*args, **kwargs)
        self.down = threading.Event()
        self.up = threading.Event()
        self.on_disconnect = lambda cp: self.down.set()
        self.on_reconnect = lambda cp: self.up.set()


def start16(meter: int) -> v16.StartTransactionRequest:
    return v16.StartTransactionRequest(connector_id=1, id_tag="TAG", meter_start=meter, timestamp=now())


def meter16(transaction_id: int | None, value: int) -> v16.MeterValuesRequest:
    return v16.MeterValuesRequest(connector_id=1, transaction_id=transaction_id, meter_value=[
        v16.MeterValue(timestamp=now(), sampled_value=[v16.SampledValue(value=str(value))])])


def stop16(transaction_id: int, meter: int) -> v16.StopTransactionRequest:
    return v16.StopTransactionRequest(transaction_id=transaction_id, meter_stop=meter, timestamp=now())


def event201(event_type: str, seq_no: int, transaction_id: str = "T1") -> v201.TransactionEventRequest:
    trigger = {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "StopAuthorized"}
    return v201.TransactionEventRequest(event_type=event_type, timestamp=now(),
                                        trigger_reason=trigger[event_type], seq_no=seq_no,
                                        transaction_info=v201.TransactionType(transaction_id=transaction_id))


def go_offline(proxy: FaultProxy, cp: Watched) -> None:
    proxy.refuse()
    assert proxy.drop() == 1
    assert cp.down.wait(WAIT), "the charge point did not notice the dropped link"
    assert not cp.connected


# -- the offline queue across a lost link -----------------------------------------------------


@pytest.mark.parametrize("start_online", [True, False], ids=["start-online", "start-offline"])
def test_v16_transaction_survives_a_dropped_link(proxy, seen, start_online):
    cp = Watched("CP16", proxy.url("/ocpp"), version="1.6")
    cp.connect()
    try:
        if start_online:
            started = cp.send(start16(1000))
            assert isinstance(started, v16.StartTransactionResponse)
            transaction_id = started.transaction_id
            go_offline(proxy, cp)
        else:
            go_offline(proxy, cp)
            handle = queued(cp, start16(1000))
            assert not handle.done() and handle.transaction_id < 0
            transaction_id = handle.transaction_id
        handles = [queued(cp, meter16(transaction_id, 1000 + n)) for n in range(1, 6)]
        handles.append(cp.send_queued(stop16(transaction_id, 1006)))
        assert not any(h.done() for h in handles)
        assert cp.queued == len(handles) + (0 if start_online else 1)
        with pytest.raises(ocpp_sync.ConnectionClosed):  # not queued: fails fast offline
            cp.send(v16.HeartbeatRequest())
        proxy.resume()
        assert seen.wait_for(lambda items: any(i[0] == "Stop" for i in items))
        for h in handles:
            assert isinstance(h.result(WAIT), (v16.MeterValuesResponse, v16.StopTransactionResponse))
        real = seen.snapshot()[0][2]
        assert seen.snapshot() == [("Start", 1000, real)] + \
            [("Meter", str(1000 + n), real) for n in range(1, 6)] + [("Stop", 1006, real)]
        assert cp.up.is_set() and cp.queued == 0
    finally:
        cp.close()


def test_v201_transaction_survives_a_dropped_link(proxy, seen):
    cp = Watched("CP201", proxy.url("/ocpp"), version="2.0.1")
    cp.connect()
    try:
        assert isinstance(cp.send(event201("Started", 0)), v201.TransactionEventResponse)
        go_offline(proxy, cp)
        handles = [queued(cp, event201("Updated", n)) for n in range(1, 6)]
        handles.append(cp.send_queued(event201("Ended", 6)))
        assert not any(h.done() for h in handles)
        proxy.resume()
        assert seen.wait_for(lambda items: any(i[0] == "Ended" for i in items))
        for h in handles:
            assert isinstance(h.result(WAIT), v201.TransactionEventResponse)
        assert seen.snapshot() == [("Started", 0, "T1", False)] + \
            [("Updated", n, "T1", True) for n in range(1, 6)] + [("Ended", 6, "T1", True)]
    finally:
        cp.close()


CHILD = """
import sys, datetime
import ocpp_sync
from ocpp_sync import v16
now = lambda: datetime.datetime.now(datetime.timezone.utc)
cp = ocpp_sync.ChargePoint("CPKILL", sys.argv[1], version="1.6", queue_path=sys.argv[2])
start = cp.send_queued(v16.StartTransactionRequest(connector_id=1, id_tag="TAG", meter_start=7,
                                                   timestamp=now()))
tid = start.transaction_id
cp.send_queued(v16.MeterValuesRequest(connector_id=1, transaction_id=tid, meter_value=[
    v16.MeterValue(timestamp=now(), sampled_value=[v16.SampledValue(value="8")])]))
cp.send_queued(v16.StopTransactionRequest(transaction_id=tid, meter_stop=9, timestamp=now()))
print("queued", cp.queued, tid, flush=True)
sys.stdin.read()
"""


def test_queued_messages_survive_a_killed_process(proxy, seen, tmp_path):
    path = tmp_path / "queue.sqlite"
    proxy.refuse()
    child = subprocess.Popen([sys.executable, "-c", CHILD, proxy.url("/ocpp"), str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
        child.stdin.close()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert line[:2] == ["queued", "3"] and int(line[2]) < 0
    assert seen.snapshot() == []
    proxy.resume()
    cp = Watched("CPKILL", proxy.url("/ocpp"), version="1.6", queue_path=path)
    assert cp.queued == 3  # what the killed run left, before this one connects
    cp.connect()
    try:
        assert seen.wait_for(lambda items: len(items) >= 3)
        real = seen.snapshot()[0][2]
        assert seen.snapshot() == [("Start", 7, real), ("Meter", "8", real), ("Stop", 9, real)]
        # Strict FIFO: once a later message is answered, the rows before it are gone.
        assert isinstance(cp.send(meter16(None, 10)), v16.MeterValuesResponse)
        assert cp.queued == 0
    finally:
        cp.close()


def test_a_call_cut_mid_frame_fails_fast_and_the_queue_goes_on(proxy, seen):
    cp = Watched("CPCUT", proxy.url("/ocpp"), version="2.0.1")
    cp.connect()
    try:
        proxy.cut(DOWN)
        with pytest.raises(ocpp_sync.ConnectionClosed):
            cp.send(v201.HeartbeatRequest(), timeout=30)
        assert cp.up.wait(WAIT), "no reconnect after the cut"
        assert isinstance(cp.send(event201("Started", 0)), v201.TransactionEventResponse)
        assert seen.snapshot() == [("Started", 0, "T1", False)]
    finally:
        cp.close()


def test_a_refused_message_is_retried_then_dropped_with_a_hook(csms, seen):
    failures = []

    @csms.on(v201.TransactionEventRequest)
    def refuse(station, request):
        failures.append(request.seq_no)
        raise ocpp_sync.OCPPError("not now", code="InternalError")

    dropped = []
    cp = Watched("CPRETRY", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1",
                 transaction_retry=TransactionRetry(attempts=3, interval=0.01),
                 on_message_dropped=lambda cp, message, exc: dropped.append((message.action, exc)))
    cp.connect()
    try:
        with pytest.raises(ocpp_sync.CallError):
            cp.send(event201("Started", 0))
        assert failures == [0, 0, 0]
        assert [(action, type(exc)) for action, exc in dropped] == [("TransactionEvent", ocpp_sync.CallError)]
        assert cp.queued == 0
    finally:
        cp.close()


# -- reconnect --------------------------------------------------------------------------------


class RecordedBackOff(Watched):
    """Records each back-off delay instead of sleeping it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delays: list[float] = []
        self.enough = threading.Event()

    def _wait_before_reconnect(self, delay: float) -> bool:
        self.delays.append(delay)
        if len(self.delays) >= 6:
            self.enough.set()
            return self._stop.wait(0.01)  # spin no faster than this while the test resumes
        return self._stop.wait(0)


def test_backoff_delays_follow_the_configured_schedule(proxy):
    schedule = BackOff(wait_minimum=2, random_range=4, repeat_times=3)
    cp = RecordedBackOff("CPBACK", proxy.url("/ocpp"), version="1.6", backoff=schedule)
    cp._random = lambda: 0.25
    cp.connect()
    try:
        go_offline(proxy, cp)
        assert cp.enough.wait(WAIT)
        proxy.resume()
        assert cp.up.wait(WAIT)
        assert cp.delays[:6] == list(islice(schedule.delays(lambda: 0.25), 6))
        assert cp.delays[:6] == [2 + 1, 4 + 1, 8 + 1, 16 + 1, 16 + 1, 16 + 1]
    finally:
        cp.close()


def test_first_connect_is_retried_when_asked(proxy):
    proxy.refuse()
    cp = RecordedBackOff("CPFIRST", proxy.url("/ocpp"), version="1.6", retry_first_connect=True)
    connecting = threading.Thread(target=cp.connect, name="test-connect")
    connecting.start()
    try:
        assert cp.enough.wait(WAIT)
        proxy.resume()
        connecting.join(WAIT)
        assert not connecting.is_alive() and cp.connected
        assert cp.send(v16.HeartbeatRequest()).current_time
    finally:
        cp.close()


def test_a_permanent_refusal_stops_the_retries(seen):
    def unauthorised(request):
        raise HandshakeError("who are you", status=401, reason="bad credentials")

    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"))
    csms.start(check_request=unauthorised)
    try:
        cp = RecordedBackOff("CP401", f"ws://127.0.0.1:{csms.port}/ocpp", version="1.6",
                             retry_first_connect=True)
        with pytest.raises(HandshakeError) as err:
            cp.connect()
        assert err.value.status == 401 and err.value.permanent
        assert cp.delays == []
        cp.close()
    finally:
        csms.stop()


def test_close_during_backoff_returns_at_once(proxy):
    proxy.refuse()
    cp = Watched("CPWAIT", proxy.url("/ocpp"), version="1.6", retry_first_connect=True,
                 backoff=BackOff(wait_minimum=60, random_range=0, repeat_times=0))
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            cp.connect()
        except BaseException as exc:
            errors.append(exc)

    connecting = threading.Thread(target=connect, name="test-connect")
    connecting.start()
    assert proxy.wait_for(lambda p: p.refused >= 1, WAIT)
    closer = threading.Thread(target=cp.close, name="test-close")
    closer.start()
    closer.join(WAIT)  # a bound, not a benchmark: the back-off wait is 60 s
    connecting.join(WAIT)
    assert not closer.is_alive() and not connecting.is_alive()
    assert [type(e) for e in errors] == [ocpp_sync.ConnectionClosed]
    assert not [t.name for t in threading.enumerate() if t.name.startswith("ocpp-CPWAIT-")]


# -- keepalive --------------------------------------------------------------------------------


def test_a_stalled_csms_is_detected_by_keepalive(proxy):
    cp = Watched("CPPING", proxy.url("/ocpp"), version="1.6", ping_interval=0.5, pong_timeout=0.5,
                 reconnect=False)
    cp.connect()
    try:
        assert cp.send(v16.HeartbeatRequest()).current_time
        proxy.stall()
        pending = cp.send_async(v16.HeartbeatRequest(), timeout=30)
        assert cp.down.wait(0.5 + 0.5 + 2.0), "keepalive did not notice the silent CSMS"
        with pytest.raises(ocpp_sync.ConnectionClosed):
            pending.result(0)
    finally:
        proxy.drop()
        cp.close()


def test_keepalive_pings_keep_a_quiet_link_up(csms):
    cp = Watched("CPQUIET", f"ws://127.0.0.1:{csms.port}/ocpp", version="1.6",
                 ping_interval=0.1, pong_timeout=0.5, reconnect=False)
    cp.connect()
    try:
        assert not cp.down.wait(1.5)  # many ping/pong rounds, no message at all
        assert cp.connected
    finally:
        cp.close()


def test_a_stalled_station_is_detected_by_the_csms(seen):
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), ping_interval=0.5, pong_timeout=0.5)
    serve_transactions(csms, seen)
    gone = threading.Event()
    csms.on_disconnect = lambda station: gone.set()
    csms.start()
    try:
        with FaultProxy(csms.port) as proxy:
            cp = Watched("CPSILENT", proxy.url("/ocpp"), version="1.6", reconnect=False)
            cp.connect()
            try:
                csms.wait_for_station("CPSILENT", WAIT)
                proxy.stall()
                assert gone.wait(0.5 + 0.5 + 2.0), "the CSMS did not notice the silent station"
                assert csms.stations == {}
            finally:
                proxy.drop()
                cp.close()
    finally:
        csms.stop()


# -- the CSMS's policies and limits -----------------------------------------------------------


def test_duplicate_station_refused_when_configured(seen):
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), on_duplicate="refuse")
    serve_transactions(csms, seen)
    csms.start()
    url = f"ws://127.0.0.1:{csms.port}/ocpp"
    try:
        with Watched("TWIN", url, version="1.6") as first:
            old = csms.wait_for_station("TWIN", WAIT)
            second = Watched("TWIN", url, version="1.6", reconnect=False)
            with pytest.raises(HandshakeError) as err:
                second.connect()
            assert err.value.status == 409 and not err.value.permanent
            second.close()
            assert csms.stations["TWIN"] is old
            assert first.send(v16.HeartbeatRequest()).current_time
        # once the first is gone, the id is free again
        with Watched("TWIN", url, version="1.6"):
            assert csms.wait_for_station("TWIN", WAIT) is not old
    finally:
        csms.stop()


def test_duplicate_station_replaces_the_old_connection_by_default(csms, proxy):
    gone = []
    closed = threading.Event()
    csms.on_disconnect = lambda station: (gone.append(station), closed.set())
    url = proxy.url("/ocpp")
    first = Watched("TWIN2", url, version="1.6", reconnect=False)
    first.connect()
    old = csms.wait_for_station("TWIN2", WAIT)
    proxy.stall()  # the old connection still looks alive to the CSMS
    try:
        with Watched("TWIN2", f"ws://127.0.0.1:{csms.port}/ocpp", version="1.6") as second:
            assert closed.wait(WAIT)
            assert gone == [old] and not old.connected
            assert csms.stations["TWIN2"] is not old
            assert second.send(v16.HeartbeatRequest()).current_time
    finally:
        proxy.drop()
        first.close()


def test_max_connections(seen):
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), max_connections=1)
    serve_transactions(csms, seen)
    csms.start()
    url = f"ws://127.0.0.1:{csms.port}/ocpp"
    try:
        with Watched("ONE", url, version="1.6"):
            csms.wait_for_station("ONE", WAIT)
            other = Watched("TWO", url, version="1.6", reconnect=False)
            with pytest.raises(HandshakeError) as err:
                other.connect()
            assert err.value.status == 503
            other.close()
    finally:
        csms.stop()


def test_a_message_over_the_size_limit_closes_with_1009(seen):
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), max_message_size=1000)
    serve_transactions(csms, seen)
    csms.start()
    ws = websocket.create_connection(f"ws://127.0.0.1:{csms.port}/ocpp/BIG", subprotocols=["ocpp1.6"],
                                     timeout=WAIT)
    try:
        ws.send('[2,"1","DataTransfer",{"vendorId":"' + "x" * 2000 + '"}]')
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1009
    finally:
        ws.close(timeout=WAIT)
        csms.stop()


def test_stop_is_bounded_with_stalled_stations(seen):
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"))
    serve_transactions(csms, seen)
    csms.start()
    proxy = FaultProxy(csms.port).start()
    cps = [Watched(f"S{n}", proxy.url("/ocpp"), version="1.6", reconnect=False) for n in range(10)]
    try:
        for cp in cps:
            cp.connect()
        for n in range(10):
            csms.wait_for_station(f"S{n}", WAIT)
        proxy.stall()  # nobody will answer the CSMS's close frames
        stopper = threading.Thread(target=csms.stop, kwargs={"timeout": 3.0}, name="test-stop")
        stopper.start()
        stopper.join(3.0 + 2.0)
        assert not stopper.is_alive(), "csms.stop() overran its bound"
        assert csms.stations == {}
    finally:
        proxy.drop()
        for cp in cps:
            cp.close()
        proxy.stop()
        csms.stop()


def test_close_waits_for_the_call_in_flight(csms, seen):
    release = threading.Event()

    @csms.on(v16.HeartbeatRequest)
    def slow(station, request):
        release.wait(WAIT)
        return v16.HeartbeatResponse(current_time=now())

    cp = Watched("CPDRAIN", f"ws://127.0.0.1:{csms.port}/ocpp", version="1.6", close_timeout=WAIT)
    cp.connect()
    pending = cp.send_async(v16.HeartbeatRequest())
    closer = threading.Thread(target=cp.close, name="test-close")
    closer.start()
    assert not pending.done()
    release.set()
    assert isinstance(pending.result(WAIT), v16.HeartbeatResponse)
    closer.join(WAIT)
    assert not closer.is_alive()


def test_thread_count_back_to_baseline_after_outages(csms):
    baseline = set(threading.enumerate())
    with FaultProxy(csms.port) as proxy:
        cp = Watched("CPCYCLE", proxy.url("/ocpp"), version="2.0.1")
        cp.connect()
        for n in range(5):
            cp.up.clear()
            cp.down.clear()
            assert proxy.drop() == 1
            assert cp.up.wait(WAIT)
            assert cp.send(event201("Updated", n)).__class__ is v201.TransactionEventResponse
        cp.close()
    for thread in set(threading.enumerate()) - baseline:
        thread.join(WAIT)
    assert set(threading.enumerate()) == baseline


# -- transaction messages sent straight from the caller's thread while online ----------------


def queue_changes(cp: ocpp_sync.ChargePoint) -> int:
    """Rows the charge point's queue has inserted, updated or deleted so far (SQLite's own counter)."""
    return cp._queue._db.total_changes


def test_online_transaction_messages_never_touch_an_in_memory_queue(csms, seen):
    cp16 = Watched("CPFAST16", f"ws://127.0.0.1:{csms.port}/ocpp", version="1.6")
    cp201 = Watched("CPFAST201", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1")
    cp16.connect()
    cp201.connect()
    try:
        before = queue_changes(cp16), queue_changes(cp201)
        started = cp16.send(start16(1000))
        assert isinstance(started, v16.StartTransactionResponse)
        for n in range(1, 4):
            assert isinstance(cp16.send(meter16(started.transaction_id, 1000 + n)), v16.MeterValuesResponse)
        assert isinstance(cp16.send(stop16(started.transaction_id, 1004)), v16.StopTransactionResponse)
        events = [event201("Started", 0)] + [event201("Updated", n) for n in range(1, 20)] + [event201("Ended", 20)]
        assert all(isinstance(cp201.send(e), v201.TransactionEventResponse) for e in events)
        assert (queue_changes(cp16), queue_changes(cp201)) == before
        assert cp16.queued == cp201.queued == 0
        tid = started.transaction_id
        assert seen.snapshot() == [("Start", 1000, tid)] + [("Meter", str(1000 + n), tid) for n in range(1, 4)] + \
            [("Stop", 1004, tid), ("Started", 0, "T1", False)] + \
            [("Updated", n, "T1", False) for n in range(1, 20)] + [("Ended", 20, "T1", False)]
    finally:
        cp16.close()
        cp201.close()


def test_a_file_backed_queue_writes_each_online_message_ahead(csms, seen, tmp_path):
    cp = Watched("CPFILE", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1", queue_path=tmp_path / "q.sqlite")
    cp.connect()
    try:
        before = queue_changes(cp)
        for n in range(5):
            assert isinstance(cp.send(event201("Updated", n)), v201.TransactionEventResponse)
        assert queue_changes(cp) == before + 2 * 5  # one insert before the send, one delete after the answer
        assert cp.queued == 0 and [i[1] for i in seen.snapshot()] == [0, 1, 2, 3, 4]
    finally:
        cp.close()


def test_direct_and_queued_messages_keep_their_order_across_link_losses(proxy, seen):
    count = 150
    cp = Watched("CPORDER", proxy.url("/ocpp"), version="2.0.1")
    cp.connect()
    results: list[Any] = []

    def sender() -> None:
        for n in range(count):
            try:
                results.append(cp.send(event201("Updated", n)))
            except ocpp_sync.Queued as exc:
                results.append(exc.handle)

    thread = threading.Thread(target=sender, name="test-sender")
    try:
        thread.start()
        for after in (40, 90):  # two losses while the sender keeps sending
            assert seen.wait_for(lambda items, after=after: len(items) >= after)
            cp.up.clear()
            assert proxy.drop() == 1
            assert cp.up.wait(WAIT), "no reconnect"
        thread.join(WAIT)
        assert not thread.is_alive()
        for result in results:
            if isinstance(result, QueuedCall):
                assert isinstance(result.result(WAIT), v201.TransactionEventResponse)
        assert seen.wait_for(lambda items: {i[1] for i in items} == set(range(count)))
        received = [i[1] for i in seen.snapshot()]
        assert received == sorted(received), "a message overtook an older one"
        assert len(received) - count <= 2, "more than one resend per lost link"  # at least once: answer lost
        assert any(isinstance(r, QueuedCall) for r in results)  # both paths were taken
        assert any(isinstance(r, v201.TransactionEventResponse) for r in results)
        assert cp.queued == 0
    finally:
        thread.join(WAIT)
        cp.close()


def test_v16_stop_sent_direct_gets_the_id_of_a_start_queued_offline(proxy, seen):
    cp = Watched("CPMIX1", proxy.url("/ocpp"), version="1.6")
    cp.connect()
    try:
        go_offline(proxy, cp)
        start = queued(cp, start16(1000))
        assert start.transaction_id < 0
        placeholder = start.transaction_id
        proxy.resume()
        real = start.result(WAIT).transaction_id
        before = queue_changes(cp)
        assert isinstance(cp.send(meter16(placeholder, 1001)), v16.MeterValuesResponse)
        assert isinstance(cp.send(stop16(placeholder, 1002)), v16.StopTransactionResponse)
        assert queue_changes(cp) == before + 1  # no message row: only the finished placeholder forgotten
        assert seen.snapshot() == [("Start", 1000, real), ("Meter", "1001", real), ("Stop", 1002, real)]
    finally:
        cp.close()


def test_v16_start_lost_mid_call_is_resent_and_the_queued_followers_get_its_id(proxy, seen):
    cp = Watched("CPMIX2", proxy.url("/ocpp"), version="1.6")
    cp.connect()
    try:
        proxy.refuse()  # no reconnect until the followers are queued
        proxy.cut(DOWN)  # the CSMS gets the Start, its answer is lost with the link
        start = queued(cp, start16(1000))
        assert start.transaction_id < 0
        handles = [queued(cp, meter16(start.transaction_id, 1001)), queued(cp, stop16(start.transaction_id, 1002))]
        assert cp.queued == 3
        proxy.resume()
        assert isinstance(handles[-1].result(WAIT), v16.StopTransactionResponse)
        first, real = seen.snapshot()[0][2], start.transaction_id
        # The Start is sent twice (its first answer was lost: at least once); the rest once, with its real id.
        assert seen.snapshot() == [("Start", 1000, first), ("Start", 1000, real), ("Meter", "1001", real),
                                   ("Stop", 1002, real)]
    finally:
        cp.close()


def test_v201_event_lost_mid_call_is_resent_as_an_online_event(proxy, seen):
    cp = Watched("CPMIX3", proxy.url("/ocpp"), version="2.0.1")
    cp.connect()
    try:
        proxy.refuse()
        proxy.cut(DOWN)
        started = queued(cp, event201("Started", 0))
        updated = queued(cp, event201("Updated", 1))  # offline now
        proxy.resume()
        assert isinstance(updated.result(WAIT), v201.TransactionEventResponse) and started.done()
        assert isinstance(cp.send(event201("Ended", 2)), v201.TransactionEventResponse)
        assert seen.snapshot() == [("Started", 0, "T1", False), ("Started", 0, "T1", False),
                                   ("Updated", 1, "T1", True), ("Ended", 2, "T1", False)]
    finally:
        cp.close()


def test_two_threads_sending_at_once_keep_their_order(csms, seen):
    per_thread = 60
    cp = Watched("CPTWO", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1")
    cp.connect()
    handles: list[Any] = []
    errors: list[BaseException] = []

    def sender(transaction_id: str) -> None:
        try:
            for n in range(per_thread):
                message = event201("Updated", n, transaction_id)
                handles.append(cp.send_async(message) if n % 4 == 3 else cp.send(message))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(t,), name=f"test-sender-{t}") for t in ("A", "B")]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        assert errors == [] and not any(t.is_alive() for t in threads)
        for handle in handles:
            if isinstance(handle, concurrent.futures.Future):
                handle.result(WAIT)
        assert seen.wait_for(lambda items: len(items) >= 2 * per_thread)
        for transaction_id in ("A", "B"):
            assert [i[1] for i in seen.snapshot() if i[2] == transaction_id] == list(range(per_thread))
        assert len(seen.snapshot()) == 2 * per_thread
    finally:
        for thread in threads:
            thread.join(WAIT)
        cp.close()


def test_one_order_across_threads_for_direct_and_queued_sends(csms, seen):
    total = 90
    cp = Watched("CPSHARED", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1")
    cp.connect()
    order = threading.Lock()  # the application's own order: whoever takes a number sends it
    numbers = iter(range(total))
    handles: list[Any] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            while True:
                with order:
                    n = next(numbers, None)
                    if n is None:
                        return
                    message = event201("Updated", n)
                    # send_async always queues; the next send() must not overtake it.
                    handles.append(cp.send_async(message) if n % 3 == 0 else cp.send(message))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, name=f"test-sender-{t}") for t in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        assert errors == [] and not any(t.is_alive() for t in threads)
        assert seen.wait_for(lambda items: len(items) >= total)
        assert [i[1] for i in seen.snapshot()] == list(range(total))
    finally:
        for thread in threads:
            thread.join(WAIT)
        cp.close()


def test_a_direct_message_refused_once_is_retried_and_answered(csms, seen):
    failures = []

    @csms.on(v201.TransactionEventRequest)
    def refuse_once(station, request):
        if not failures:
            failures.append(request.seq_no)
            raise ocpp_sync.OCPPError("not now", code="InternalError")
        seen.add((request.event_type, request.seq_no))
        return v201.TransactionEventResponse()

    cp = Watched("CPONCE", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1",
                 transaction_retry=TransactionRetry(attempts=2, interval=0.01))
    cp.connect()
    try:
        assert isinstance(cp.send(event201("Started", 0)), v201.TransactionEventResponse)  # on its 2nd attempt
        # docs/offline-queue.md: same payload, new id, so a late answer to the first try is not taken.
        calls = [e for e in csms.stations["CPONCE"].history.entries()
                 if e.direction == "in" and e.type == "CALL" and e.action == "TransactionEvent"]
        assert [e.payload for e in calls] == [calls[0].payload] * 2
        assert calls[0].message_id != calls[1].message_id
        before = queue_changes(cp)
        assert isinstance(cp.send(event201("Ended", 1)), v201.TransactionEventResponse)
        assert queue_changes(cp) == before  # the queue is empty again: straight out
        assert failures == [0] and seen.snapshot() == [("Started", 0), ("Ended", 1)]
    finally:
        cp.close()


def test_a_timeout_shorter_than_the_charge_points_goes_through_the_queue(csms, seen):
    cp = Watched("CPSHORT", f"ws://127.0.0.1:{csms.port}/ocpp", version="2.0.1")
    cp.connect()
    try:
        before = queue_changes(cp)
        # The call keeps the charge point's own timeout (the retry rules count it); the caller waits less.
        assert isinstance(cp.send(event201("Started", 0), timeout=WAIT / 2), v201.TransactionEventResponse)
        assert queue_changes(cp) == before + 2  # stored, then deleted once answered
        assert isinstance(cp.send(event201("Ended", 1), timeout=WAIT), v201.TransactionEventResponse)
        assert queue_changes(cp) == before + 2
        assert [i[1] for i in seen.snapshot()] == [0, 1]
    finally:
        cp.close()


def test_close_during_a_direct_send_keeps_the_message_in_the_file(csms, seen, tmp_path):
    entered, release = threading.Event(), threading.Event()

    @csms.on(v201.TransactionEventRequest)
    def slow_first(station, request):
        seen.add((request.event_type, request.seq_no, bool(request.offline)))
        if not entered.is_set():
            entered.set()
            release.wait(WAIT)
        return v201.TransactionEventResponse()

    path = tmp_path / "q.sqlite"
    url = f"ws://127.0.0.1:{csms.port}/ocpp"
    cp = Watched("CPCLOSE", url, version="2.0.1", queue_path=path, close_timeout=0.1)
    cp.connect()
    outcome: list[Any] = []

    def sender() -> None:
        try:
            outcome.append(cp.send(event201("Started", 0)))
        except (ocpp_sync.Queued, ocpp_sync.ConnectionClosed) as exc:  # kept, or failed by close()
            outcome.append(exc)

    thread = threading.Thread(target=sender, name="test-sender")
    thread.start()
    try:
        assert entered.wait(WAIT)
        cp.close()  # its answer never comes in time: the row written ahead must stay
        thread.join(WAIT)
        assert not thread.is_alive() and len(outcome) == 1
        assert isinstance(outcome[0], (ocpp_sync.Queued, ocpp_sync.ConnectionClosed))
    finally:
        release.set()
        thread.join(WAIT)
    again = Watched("CPCLOSE", url, version="2.0.1", queue_path=path)
    again.connect()
    try:
        assert seen.wait_for(lambda items: len(items) >= 2)
        assert again.send(event201("Ended", 1)).__class__ is v201.TransactionEventResponse
        assert seen.snapshot() == [("Started", 0, False), ("Started", 0, False), ("Ended", 1, False)]
        assert again.queued == 0
    finally:
        again.close()
