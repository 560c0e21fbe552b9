"""The durable offline queue: order, acknowledgement, persistence across a killed process, the bound, ids."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from ocpp_sync.chargepoint.store import END, OTHER, SAMPLE, START, OfflineQueue, is_queued

T = "2026-01-01T00:00:00Z"


def start16(connector: int = 1) -> dict:
    return {"connectorId": connector, "idTag": "TAG", "meterStart": 0, "timestamp": T}


def stop16(tx: int, meter: int = 10) -> dict:
    return {"transactionId": tx, "meterStop": meter, "timestamp": T}


def meter16(tx: int | None, value: int = 1) -> dict:
    payload = {"connectorId": 1, "meterValue": [{"timestamp": T, "sampledValue": [{"value": str(value)}]}]}
    if tx is not None:
        payload["transactionId"] = tx
    return payload


def event201(event_type: str, seq_no: int) -> dict:
    return {"eventType": event_type, "timestamp": T, "triggerReason": "Authorized", "seqNo": seq_no,
            "transactionInfo": {"transactionId": "TX1"}}


def security(n: int) -> dict:
    return {"type": "SettingSystemTime", "timestamp": T, "techInfo": str(n)}


@pytest.fixture
def queue():
    q = OfflineQueue()
    yield q
    q.close()


def drain(q: OfflineQueue) -> list:
    out = []
    while (head := q.peek()) is not None:
        out.append(head)
        assert q.ack(head.seq)
    return out


def test_which_actions_are_queued():
    assert is_queued("1.6", "StartTransaction") and is_queued("1.6", "MeterValues")
    assert is_queued("2.0.1", "TransactionEvent") and is_queued("2.1", "SecurityEventNotification")
    assert not is_queued("1.6", "Heartbeat") and not is_queued("2.0.1", "MeterValues")
    assert not is_queued("1.6", "TransactionEvent") and not is_queued("3.0", "TransactionEvent")


def test_fifo_peek_leaves_the_head_until_ack(queue):
    seqs = [queue.put("2.0.1", "TransactionEvent", event201("Updated", n)).seq for n in range(5)]
    assert seqs == sorted(seqs)
    head = queue.peek()
    assert queue.peek() == head and len(queue) == 5
    assert [m.payload["seqNo"] for m in drain(queue)] == [0, 1, 2, 3, 4]
    assert queue.peek() is None and len(queue) == 0


def test_ack_of_a_gone_message_is_false(queue):
    seq = queue.put("1.6", "MeterValues", meter16(None)).seq
    assert queue.ack(seq) is True
    assert queue.ack(seq) is False
    assert queue.discard(seq) is False


def test_rows_keep_version_action_payload_and_attempts():
    clock = iter([100.0])
    q = OfflineQueue(clock=lambda: next(clock))
    seq = q.put("2.1", "SecurityEventNotification", security(1)).seq
    assert q.record_attempt(seq) == 1
    assert q.record_attempt(seq) == 2
    head = q.peek()
    assert (head.version, head.action, head.payload, head.attempts, head.created, head.kind) == (
        "2.1", "SecurityEventNotification", security(1), 2, 100.0, OTHER)
    with pytest.raises(KeyError):
        q.record_attempt(seq + 1)
    q.close()


def test_refuses_what_is_not_queued_or_not_json(queue):
    with pytest.raises(ValueError):
        queue.put("1.6", "Heartbeat", {})
    with pytest.raises(ValueError):
        queue.put("2.0.1", "StartTransaction", start16())
    with pytest.raises((ValueError, TypeError)):
        queue.put("1.6", "MeterValues", {"when": object()})
    with pytest.raises(ValueError):
        queue.put("1.6", "MeterValues", {"value": float("nan")})
    assert len(queue) == 0


def test_kinds():
    q = OfflineQueue()
    kinds = [q.put("1.6", "StartTransaction", start16()).seq, q.put("1.6", "MeterValues", meter16(None)).seq,
             q.put("1.6", "StopTransaction", stop16(5)).seq,
             q.put("2.0.1", "TransactionEvent", event201("Started", 0)).seq,
             q.put("2.0.1", "TransactionEvent", event201("Updated", 1)).seq,
             q.put("2.0.1", "TransactionEvent", event201("Ended", 2)).seq,
             q.put("2.0.1", "SecurityEventNotification", security(0)).seq]
    assert len(kinds) == 7
    assert [m.kind for m in q.messages()] == [START, SAMPLE, END, START, SAMPLE, END, OTHER]
    q.close()


def test_closed_queue_refuses_work_and_wakes_waiters():
    q = OfflineQueue()
    result = []
    waiter = threading.Thread(target=lambda: result.append(q.wait(30)))
    waiter.start()
    q.close()
    waiter.join(10)
    assert result == [False]
    q.close()
    with pytest.raises(RuntimeError):
        q.put("1.6", "MeterValues", meter16(None))
    with pytest.raises(RuntimeError):
        q.peek()


def test_wait_returns_when_a_message_arrives(queue):
    assert queue.wait(0.01) is False
    result = []
    waiter = threading.Thread(target=lambda: result.append(queue.wait(30)))
    waiter.start()
    queue.put("1.6", "MeterValues", meter16(None))
    waiter.join(10)
    assert result == [True]
    assert queue.wait(0) is True


# -- the bound -----------------------------------------------------------------


def test_full_queue_drops_the_oldest_sample_first():
    q = OfflineQueue(max_messages=4)
    start = q.put("1.6", "StartTransaction", start16())
    tx = start.local_transaction_id
    first = q.put("1.6", "MeterValues", meter16(tx, 1)).seq
    q.put("1.6", "SecurityEventNotification", security(1))
    q.put("1.6", "MeterValues", meter16(tx, 2))
    result = q.put("1.6", "MeterValues", meter16(tx, 3))
    assert result.seq is not None
    assert [m.seq for m in result.evicted] == [first]
    assert [m.action for m in q.messages()] == [
        "StartTransaction", "SecurityEventNotification", "MeterValues", "MeterValues"]
    q.close()


def test_full_queue_without_samples_drops_security_events_then_refuses_newcomers():
    q = OfflineQueue(max_messages=2)
    q.put("2.0.1", "TransactionEvent", event201("Started", 0))
    old = q.put("2.0.1", "SecurityEventNotification", security(1)).seq
    newer = q.put("2.0.1", "SecurityEventNotification", security(2))
    assert [m.seq for m in newer.evicted] == [old]
    # A sample is worth less than the stored security event: the newcomer is the one dropped.
    refused = q.put("2.0.1", "TransactionEvent", event201("Updated", 1))
    assert refused.seq is None and refused.evicted == ()
    assert [m.payload.get("techInfo") for m in q.messages()] == [None, "2"]
    q.close()


def test_full_queue_never_drops_a_start_or_an_end():
    q = OfflineQueue(max_messages=3)
    for n in range(3):
        q.put("2.0.1", "TransactionEvent", event201("Updated", n))
    seqs = []
    for n, event_type in enumerate(["Started", "Ended", "Started", "Ended", "Started"]):
        result = q.put("2.0.1", "TransactionEvent", event201(event_type, 10 + n))
        assert result.seq is not None
        seqs.append(result.seq)
    kinds = [m.kind for m in q.messages()]
    assert kinds == [START, END, START, END, START]  # samples went first, then the bound was exceeded
    assert [m.seq for m in q.messages()] == seqs
    assert q.put("2.0.1", "SecurityEventNotification", security(0)).seq is None
    assert q.put("1.6", "MeterValues", meter16(None)).seq is None
    assert len(q) == 5
    q.close()


@pytest.mark.parametrize("seed", range(5))
def test_random_load_on_a_small_queue_keeps_every_start_and_end_in_order(seed):
    import random
    rng = random.Random(seed)
    q = OfflineQueue(max_messages=5)
    expected_critical = []
    for n in range(200):
        event_type = rng.choice(["Started", "Updated", "Updated", "Updated", "Ended", "Security"])
        if event_type == "Security":
            q.put("2.0.1", "SecurityEventNotification", security(n))
        else:
            seq = q.put("2.0.1", "TransactionEvent", event201(event_type, n)).seq
            if event_type != "Updated":
                expected_critical.append(seq)
        if rng.random() < 0.3 and (head := q.peek()) is not None:
            q.ack(head.seq)
            if head.seq in expected_critical:
                expected_critical.remove(head.seq)
        assert len(q) <= max(5, sum(m.kind in (START, END) for m in q.messages()))
    stored = [m.seq for m in q.messages() if m.kind in (START, END)]
    assert stored == expected_critical
    q.close()


# -- OCPP 1.6 transaction ids ----------------------------------------------------


def test_placeholder_ids_are_negative_unique_and_rewritten_on_ack(queue):
    first = queue.put("1.6", "StartTransaction", start16(1))
    second = queue.put("1.6", "StartTransaction", start16(2))
    a, b = first.local_transaction_id, second.local_transaction_id
    assert a < 0 and b < 0 and a != b
    queue.put("1.6", "MeterValues", meter16(a, 1))
    queue.put("1.6", "MeterValues", meter16(b, 2))
    queue.put("1.6", "StopTransaction", stop16(a))
    queue.put("1.6", "StopTransaction", stop16(b))
    queue.put("1.6", "MeterValues", meter16(None, 3))
    head = queue.peek()
    assert head.seq == first.seq and head.local_transaction_id == a
    assert queue.ack(head.seq, transaction_id=1001)
    assert queue.real_transaction_id(a) == 1001 and queue.real_transaction_id(b) is None
    rest = queue.messages()
    assert [m.payload.get("transactionId") for m in rest] == [None, 1001, b, 1001, b, None]
    assert queue.ack(rest[0].seq, transaction_id=2002)
    assert [m.payload.get("transactionId") for m in drain(queue)] == [1001, 2002, 1001, 2002, None]


def test_message_put_after_the_answer_gets_the_real_id_at_once(queue):
    local = queue.put("1.6", "StartTransaction", start16()).local_transaction_id
    queue.ack(queue.peek().seq, transaction_id=77)
    queue.put("1.6", "MeterValues", meter16(local))
    queue.put("1.6", "StopTransaction", stop16(local))
    assert [m.payload["transactionId"] for m in queue.messages()] == [77, 77]


def test_resolve_transaction_id_rewrites_without_ack(queue):
    start = queue.put("1.6", "StartTransaction", start16())
    queue.put("1.6", "StopTransaction", stop16(start.local_transaction_id))
    assert queue.resolve_transaction_id(start.local_transaction_id, 5) == 1
    assert [m.payload.get("transactionId") for m in queue.messages()] == [None, 5]
    assert queue.peek().action == "StartTransaction"  # still there until the CSMS's answer is acked
    with pytest.raises(KeyError):
        queue.resolve_transaction_id(-12345, 6)


def test_real_ids_and_unknown_negative_ids_are_left_alone(queue):
    queue.put("1.6", "StopTransaction", stop16(-999))
    queue.put("1.6", "StopTransaction", stop16(12))
    assert [(m.payload["transactionId"], m.local_transaction_id) for m in queue.messages()] == [
        (-999, None), (12, None)]


def test_a_discarded_start_leaves_later_messages_unchanged(queue):
    start = queue.put("1.6", "StartTransaction", start16())
    queue.put("1.6", "StopTransaction", stop16(start.local_transaction_id))
    assert queue.discard(start.seq)
    assert queue.peek().payload["transactionId"] == start.local_transaction_id


# -- persistence -------------------------------------------------------------------


def test_reopening_the_file_resumes_the_same_queue(tmp_path):
    path = tmp_path / "queue.sqlite"
    with OfflineQueue(path) as q:
        start = q.put("1.6", "StartTransaction", start16())
        q.put("1.6", "StopTransaction", stop16(start.local_transaction_id))
        q.put("1.6", "MeterValues", meter16(None))
        q.record_attempt(start.seq)
    with OfflineQueue(path) as q:
        messages = q.messages()
        assert [m.action for m in messages] == ["StartTransaction", "StopTransaction", "MeterValues"]
        assert messages[0].attempts == 1
        q.ack(messages[0].seq, transaction_id=31)
        later = q.put("1.6", "StartTransaction", start16())
        assert later.local_transaction_id < start.local_transaction_id  # placeholders are never reused
        assert later.seq > messages[-1].seq
    with OfflineQueue(path) as q:
        assert [m.payload.get("transactionId") for m in q.messages()] == [31, None, None]


CHILD = textwrap.dedent("""
    import sys
    from ocpp_sync.chargepoint.store import OfflineQueue
    q = OfflineQueue(sys.argv[1])
    n = 0
    while True:
        local = q.put("1.6", "StartTransaction", {"connectorId": 1, "idTag": str(n), "meterStart": n,
                                                  "timestamp": "2026-01-01T00:00:00Z"}).local_transaction_id
        print("put", n, local, flush=True)
        n += 1
        if n % 3 == 0:
            head = q.peek()
            q.ack(head.seq, transaction_id=10_000 + head.payload["meterStart"])
            print("ack", head.payload["meterStart"], flush=True)
""")


def test_survives_sigkill_mid_way(tmp_path):
    path = tmp_path / "queue.sqlite"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    puts, acks = [], []

    def note(line: str) -> None:
        word, *rest = line.split()
        (puts if word == "put" else acks).append(int(rest[0]))

    try:
        for line in child.stdout:
            note(line)
            if len(puts) >= 30:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        # What it reported between our last read and its death counts too (each line is one atomic pipe write).
        for line in child.stdout.read().splitlines():
            note(line)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(puts) >= 30, "the child died before it had queued enough"
    with OfflineQueue(path) as q:
        remaining = [m.payload["meterStart"] for m in q.messages()]
        # Everything reported as committed is there, in order; at most one more put or ack than reported.
        assert remaining == list(range(remaining[0], remaining[-1] + 1))
        assert remaining[0] in (len(acks), len(acks) + 1)
        assert remaining[-1] in (puts[-1], puts[-1] + 1)
        # The placeholders the child handed out stay resolvable after the restart.
        head = q.peek()
        assert q.ack(head.seq, transaction_id=5)
        assert q.real_transaction_id(head.local_transaction_id) == 5


# -- threads -------------------------------------------------------------------------


def test_concurrent_producers_and_one_consumer_lose_and_duplicate_nothing():
    q = OfflineQueue()  # the locking is the same for a file; a file only adds fsync time
    producers, per_producer = 6, 40
    barrier = threading.Barrier(producers + 1)
    consumed: list = []
    errors: list = []

    def produce(p: int) -> None:
        try:
            barrier.wait(10)
            for n in range(per_producer):
                payload = {**event201("Updated", n), "transactionInfo": {"transactionId": f"P{p}"}}
                q.put("2.0.1", "TransactionEvent", payload)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    def consume() -> None:
        try:
            barrier.wait(10)
            while len(consumed) < producers * per_producer:
                if not q.wait(10):
                    raise TimeoutError("consumer starved")
                head = q.peek()
                q.record_attempt(head.seq)
                if not q.ack(head.seq):
                    raise AssertionError(f"{head.seq} vanished before its ack")
                consumed.append(head)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads.append(threading.Thread(target=consume))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(q) == 0
    assert [m.seq for m in consumed] == sorted(m.seq for m in consumed)
    assert len({m.seq for m in consumed}) == producers * per_producer
    for p in range(producers):
        mine = [m.payload["seqNo"] for m in consumed if m.payload["transactionInfo"]["transactionId"] == f"P{p}"]
        assert mine == list(range(per_producer))  # each producer's own order is kept
    q.close()


# -- the outbox: delivery one at a time, oldest first ------------------------------------


class FakeLink:
    """Stands in for the connection (``Connection.send_payload``): answers each call as the test scripts it."""

    closed = False

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: list = []  # every send_payload() call, as (action, payload)
        self.accepted: list = []  # the ones the "CSMS" answered
        self.script: dict = {}  # number of the call (0-based) -> exception to raise
        self.answers: dict = {}  # action -> response dict

    def send_payload(self, action, payload, timeout=None):
        with self.cond:
            n = len(self.calls)
            self.calls.append((action, payload))
            self.cond.notify_all()
            exc = self.script.pop(n, None)
            if exc is not None:
                raise exc
            self.accepted.append((action, payload))
            self.cond.notify_all()
            return self.answers.get(action, {})

    def wait(self, predicate, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


@pytest.fixture
def link():
    return FakeLink()


@pytest.fixture
def make_outbox():
    from ocpp_sync.chargepoint.outbox import Outbox
    made = []

    def make(link, version="2.0.1", queue=None, **kwargs):
        outbox = Outbox(queue if queue is not None else OfflineQueue(), version=version,
                        name="test", **kwargs)
        made.append(outbox)
        outbox.start()
        return outbox

    yield make
    for outbox in made:
        outbox.stop()
        outbox.queue.close()


def outbox_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "test-outbox"]


def test_outbox_holds_messages_while_offline_and_delivers_them_in_order(link, make_outbox):
    outbox = make_outbox(link)
    handles = [outbox.submit("TransactionEvent", event201("Updated", n)) for n in range(5)]
    assert not handles[0].done() and link.calls == []
    outbox.online(link)
    assert [h.result(10) for h in handles] == [{}] * 5
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1, 2, 3, 4]
    assert len(link.calls) == 5 and len(outbox) == 0
    outbox.stop()
    assert outbox_threads() == []


def test_a_lost_link_is_not_a_failed_attempt_and_delivery_resumes_in_order(link, make_outbox):
    from ocpp_sync.errors import ConnectionClosed
    from ocpp_sync.protocol.retry import TransactionRetry
    link.script = {2: ConnectionClosed("lost"), 3: ConnectionClosed("lost again")}
    outbox = make_outbox(link, retry=TransactionRetry(attempts=1, interval=0))
    handles = [outbox.submit("TransactionEvent", event201("Updated", n)) for n in range(5)]
    outbox.online(link)
    assert link.wait(lambda: len(link.calls) == 3)
    assert handles[1].result(10) == {} and not handles[2].done()
    assert outbox.queue.peek().payload["seqNo"] == 2 and outbox.queue.peek().attempts == 0
    outbox.online(link)  # the next connection; the first call on it is lost too
    assert link.wait(lambda: len(link.calls) == 4)
    outbox.online(link)
    assert [h.result(10) for h in handles] == [{}] * 5
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1, 2, 3, 4]
    outbox.stop()


def test_a_failing_message_is_retried_then_given_up_while_later_ones_wait(link, make_outbox):
    from ocpp_sync.errors import CallError, CallTimeout
    from ocpp_sync.protocol.retry import TransactionRetry
    link.script = {0: CallError("InternalError"), 1: CallTimeout("slow"), 2: CallError("InternalError", "third"),
                   3: CallError("GenericError"), 4: CallError("GenericError")}
    dropped = []
    outbox = make_outbox(link, retry=TransactionRetry(attempts=3, interval=0.01),
                         on_dropped=lambda message, exc: dropped.append((message.payload["seqNo"], exc.code)))
    first = outbox.submit("TransactionEvent", event201("Started", 0))
    second = outbox.submit("TransactionEvent", event201("Ended", 1))
    outbox.online(link)
    with pytest.raises(CallError) as failed:
        first.result(10)
    assert failed.value.description == "third"
    assert dropped == [(0, "InternalError")]
    assert second.result(10) == {}  # failed twice, answered on its third attempt
    assert [payload["seqNo"] for _, payload in link.calls] == [0, 0, 0, 1, 1, 1]
    assert [payload["seqNo"] for _, payload in link.accepted] == [1]
    outbox.stop()


def test_outbox_fixes_up_1_6_transaction_ids(link, make_outbox):
    link.answers = {"StartTransaction": {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}}
    outbox = make_outbox(link, version="1.6")
    start = outbox.submit("StartTransaction", start16())
    placeholder = start.transaction_id
    assert placeholder is not None and placeholder < 0
    meter = outbox.submit("MeterValues", meter16(placeholder))
    stop = outbox.submit("StopTransaction", stop16(placeholder))
    outbox.online(link)
    stop.result(10)
    assert meter.result(10) == {}
    assert start.transaction_id == 4242 and start.local_transaction_id == placeholder
    assert [(action, payload.get("transactionId")) for action, payload in link.accepted] == [
        ("StartTransaction", None), ("MeterValues", 4242), ("StopTransaction", 4242)]
    outbox.stop()


def test_outbox_fails_the_handles_of_dropped_messages(link, make_outbox):
    from ocpp_sync.errors import OCPPError
    dropped = []
    outbox = make_outbox(link, queue=OfflineQueue(max_messages=2),
                         on_dropped=lambda message, exc: dropped.append((message.seq, message.action, exc.code)))
    first = outbox.submit("TransactionEvent", event201("Updated", 0))
    outbox.submit("TransactionEvent", event201("Started", 1))
    outbox.submit("TransactionEvent", event201("Updated", 2))
    with pytest.raises(OCPPError) as exc:
        first.result(10)
    assert exc.value.code == "MessageDropped"
    outbox.submit("TransactionEvent", event201("Ended", 3))  # a sample makes room for it
    refused = outbox.submit("SecurityEventNotification", security(4))
    assert refused.seq is None and refused.exception(10).code == "MessageDropped"
    # The refused newcomer reaches the hook too, with no row: it was never stored.
    assert dropped == [(first.seq, "TransactionEvent", "MessageDropped"),
                       (first.seq + 2, "TransactionEvent", "MessageDropped"),
                       (None, "SecurityEventNotification", "MessageDropped")]
    outbox.stop()


def test_outbox_delivers_what_a_previous_run_left_and_discards_other_versions(tmp_path, link, make_outbox):
    path = tmp_path / "queue.sqlite"
    with OfflineQueue(path) as q:
        q.put("2.0.1", "TransactionEvent", event201("Started", 0))
        q.put("1.6", "MeterValues", meter16(None))
        q.put("2.0.1", "TransactionEvent", event201("Ended", 1))
    dropped = []
    outbox = make_outbox(link, queue=OfflineQueue(path), on_dropped=lambda message, exc: dropped.append(message))
    outbox.online(link)
    assert link.wait(lambda: len(link.accepted) == 2)
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1]
    assert [m.action for m in dropped] == ["MeterValues"]
    outbox.stop()
    assert len(outbox.queue) == 0


def test_stop_fails_waiting_handles_and_keeps_their_messages(link, make_outbox):
    from ocpp_sync.errors import ConnectionClosed
    outbox = make_outbox(link)
    handle = outbox.submit("TransactionEvent", event201("Started", 0))
    outbox.stop()
    assert outbox_threads() == []
    with pytest.raises(ConnectionClosed):
        handle.result(10)
    assert len(outbox.queue) == 1
    with pytest.raises(ConnectionClosed):
        outbox.submit("TransactionEvent", event201("Ended", 1))


# -- the queue's own support for sending without a row ------------------------------------


def test_len_follows_every_change_without_sql(queue):
    queue.max_messages = 3
    for n in range(5):  # two samples evicted on the way
        queue.put("2.0.1", "TransactionEvent", event201("Updated", n))
    assert len(queue) == len(queue.messages()) == 3
    queue.discard(queue.peek().seq)
    queue.ack(queue.peek().seq)
    assert not queue.ack(12345)
    assert len(queue) == len(queue.messages()) == 1
    before = queue._db.total_changes
    assert len(queue) == 1 and queue._db.total_changes == before


def test_head_put_goes_before_every_stored_message(queue):
    queue.put("2.0.1", "TransactionEvent", event201("Updated", 2))
    queue.put("2.0.1", "TransactionEvent", event201("Updated", 3))
    queue.put("2.0.1", "TransactionEvent", event201("Updated", 1), head=True)
    queue.put("2.0.1", "TransactionEvent", event201("Updated", 0), head=True)
    queue.put("2.0.1", "TransactionEvent", event201("Updated", 4))
    assert [m.payload["seqNo"] for m in drain(queue)] == [0, 1, 2, 3, 4]
    queue.put("2.0.1", "TransactionEvent", event201("Updated", 5), head=True)  # empty: a plain put
    assert queue.get(queue.peek().seq).payload["seqNo"] == 5 and queue.get(-99) is None


def test_a_full_queue_refuses_a_head_sample_instead_of_dropping_a_newer_one():
    q = OfflineQueue(max_messages=2)
    q.put("2.0.1", "TransactionEvent", event201("Updated", 1))
    q.put("2.0.1", "TransactionEvent", event201("Updated", 2))
    refused = q.put("2.0.1", "TransactionEvent", event201("Updated", 0), head=True)
    assert refused.seq is None and refused.evicted == ()
    kept = q.put("2.0.1", "TransactionEvent", event201("Started", 0), head=True)  # a start evicts a sample
    assert [m.payload["seqNo"] for m in kept.evicted] == [1]
    assert [(m.payload["eventType"], m.payload["seqNo"]) for m in q.messages()] == [("Started", 0), ("Updated", 2)]
    q.close()


def test_fix_up_for_a_message_sent_without_a_row(queue):
    placeholder = queue.put("1.6", "StartTransaction", start16()).local_transaction_id
    stop = stop16(placeholder)
    assert queue.fix_up("1.6", "StopTransaction", stop) == (stop, placeholder)  # not known yet
    queue.ack(queue.peek().seq, transaction_id=77)
    fixed, local = queue.fix_up("1.6", "StopTransaction", stop)
    assert fixed["transactionId"] == 77 and local == placeholder and stop["transactionId"] == placeholder
    before = queue._db.total_changes
    for action, payload in [("StopTransaction", stop16(5)), ("MeterValues", meter16(None)),
                            ("TransactionEvent", event201("Updated", 0))]:
        assert queue.fix_up("1.6", action, payload) == (payload, None)
    assert queue._db.total_changes == before
    queue.forget_transaction_id(placeholder)
    assert queue.real_transaction_id(placeholder) is None


# -- the outbox's direct path: the caller's thread sends when nothing is ahead ----------------


class DirectLink(FakeLink):
    """A FakeLink whose direct calls (from any thread but the outbox's) can be held on the wire
    until the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list = []  # the thread of every call, direct or not
        self.hold = threading.Event()
        self.hold.set()
        self.on_wire = threading.Event()

    def send_payload(self, action, payload, timeout=None):
        if not threading.current_thread().name.endswith("-outbox"):
            self.on_wire.set()
            assert self.hold.wait(10)
        self.threads.append(threading.get_ident())
        return super().send_payload(action, payload, timeout)


def send_in_thread(outbox, link, action, payload):
    box: dict = {}

    def run():
        box["handle"] = outbox.send(action, payload)

    thread = threading.Thread(target=run)
    thread.start()
    assert link.on_wire.wait(10)
    return thread, box


def test_outbox_send_goes_from_the_callers_thread_without_touching_the_queue(make_outbox):
    link = DirectLink()
    outbox = make_outbox(link)
    offline = outbox.send("TransactionEvent", event201("Started", 0))
    assert not offline.done() and link.calls == [] and len(outbox) == 1  # not connected: queued
    outbox.online(link)
    assert offline.result(10) == {}
    before = outbox.queue._db.total_changes
    handles = [outbox.send("TransactionEvent", event201("Updated", n))
               for n in range(1, 6)]
    assert all(h.done() and h.result() == {} for h in handles)
    assert outbox.queue._db.total_changes == before and len(outbox) == 0
    assert link.threads[1:] == [threading.get_ident()] * 5
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1, 2, 3, 4, 5]


def test_what_comes_during_a_direct_send_waits_behind_it(make_outbox):
    link = DirectLink()
    outbox = make_outbox(link)
    outbox.online(link)
    link.hold.clear()
    thread, box = send_in_thread(outbox, link, "TransactionEvent", event201("Started", 0))
    assert len(outbox) == 1 and len(outbox.queue) == 0  # in flight without a row, still counted
    later = [outbox.send("TransactionEvent", event201("Updated", 1)),
             outbox.submit("TransactionEvent", event201("Updated", 2))]
    assert not any(h.done() for h in later) and len(link.calls) == 0  # neither overtakes the one on the wire
    link.hold.set()
    thread.join(10)
    assert box["handle"].result(0) == {} and [h.result(10) for h in later] == [{}, {}]
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1, 2]


def test_a_direct_send_lost_with_the_link_goes_back_to_the_head(make_outbox):
    from ocpp_sync.errors import ConnectionClosed
    link = DirectLink()
    outbox = make_outbox(link)
    outbox.online(link)
    link.hold.clear()
    link.script = {0: ConnectionClosed("lost")}
    thread, box = send_in_thread(outbox, link, "TransactionEvent", event201("Started", 0))
    behind = outbox.submit("TransactionEvent", event201("Updated", 1))
    link.hold.set()
    thread.join(10)
    handle = box["handle"]
    assert not handle.done() and handle.seq is not None and not outbox.is_online
    assert [(m.payload["seqNo"], m.attempts) for m in outbox.queue.messages()] == [(0, 0), (1, 0)]
    outbox.online(link)
    assert handle.result(10) == {} and behind.result(10) == {}
    assert [payload["seqNo"] for _, payload in link.calls] == [0, 0, 1]
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1]


def test_a_refused_direct_send_follows_the_retry_rules(make_outbox):
    from ocpp_sync.errors import CallError, CallTimeout
    from ocpp_sync.protocol.retry import TransactionRetry
    link = DirectLink()
    dropped = []
    outbox = make_outbox(link, retry=TransactionRetry(attempts=2, interval=0.01),
                         on_dropped=lambda message, exc: dropped.append((message.payload["seqNo"], exc.code)))
    outbox.online(link)
    link.script = {0: CallError("InternalError"), 2: CallTimeout("slow"), 3: CallError("GenericError", "last")}
    retried = outbox.send("TransactionEvent", event201("Started", 0))
    assert not retried.done()  # its second attempt is the outbox's
    assert retried.result(10) == {} and dropped == []
    given_up = outbox.send("TransactionEvent", event201("Ended", 1))
    with pytest.raises(CallError) as failed:
        given_up.result(10)
    assert failed.value.description == "last" and dropped == [(1, "GenericError")]
    assert [payload["seqNo"] for _, payload in link.calls] == [0, 0, 1, 1]
    assert len(outbox) == 0

    once = make_outbox(link, retry=TransactionRetry(attempts=1, interval=0.01))
    once.online(link)
    link.script = {4: CallError("InternalError", "no retry")}
    at_once = once.send("TransactionEvent", event201("Started", 2))
    assert at_once.done() and at_once.exception().description == "no retry" and len(once) == 0


def test_a_file_backed_outbox_writes_a_direct_message_ahead(tmp_path, make_outbox):
    from ocpp_sync.errors import ConnectionClosed
    link = DirectLink()
    outbox = make_outbox(link, queue=OfflineQueue(tmp_path / "q.sqlite"))
    assert outbox.write_ahead
    outbox.online(link)
    link.hold.clear()
    link.script = {0: ConnectionClosed("lost")}
    thread, box = send_in_thread(outbox, link, "TransactionEvent", event201("Started", 0))
    assert [m.payload["seqNo"] for m in outbox.queue.messages()] == [0]  # on disk while on the wire
    with OfflineQueue(tmp_path / "q.sqlite") as reader:  # what a crash now would leave
        assert [m.payload["seqNo"] for m in reader.messages()] == [0]
    link.hold.set()
    thread.join(10)
    assert not box["handle"].done()
    outbox.online(link)
    assert box["handle"].result(10) == {}
    assert outbox.send("TransactionEvent", event201("Ended", 1)).result(0) == {}
    assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1] and len(outbox.queue) == 0


def test_direct_sends_fix_up_and_forget_1_6_placeholders(make_outbox):
    link = DirectLink()
    link.answers = {"StartTransaction": {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}}
    outbox = make_outbox(link, version="1.6")
    start = outbox.submit("StartTransaction", start16())  # offline: queued with a placeholder
    placeholder = start.transaction_id
    outbox.online(link)
    assert start.result(10)["transactionId"] == 4242
    meter = outbox.send("MeterValues", meter16(placeholder))
    stop = outbox.send("StopTransaction", stop16(placeholder))
    assert meter.result(0) == {} and stop.result(0) == {}
    assert [(action, payload.get("transactionId")) for action, payload in link.accepted] == [
        ("StartTransaction", None), ("MeterValues", 4242), ("StopTransaction", 4242)]
    assert link.threads[1:] == [threading.get_ident()] * 2
    assert outbox.queue.real_transaction_id(placeholder) is None  # forgotten once the transaction ended


def test_a_direct_start_lost_with_the_link_gets_a_placeholder_its_followers_share(make_outbox):
    from ocpp_sync.errors import ConnectionClosed
    link = DirectLink()
    link.answers = {"StartTransaction": {"transactionId": 99, "idTagInfo": {"status": "Accepted"}}}
    link.script = {0: ConnectionClosed("lost")}
    outbox = make_outbox(link, version="1.6")
    outbox.online(link)
    start = outbox.send("StartTransaction", start16())
    assert not start.done() and start.transaction_id < 0
    stop = outbox.send("StopTransaction", stop16(start.transaction_id))
    outbox.online(link)
    assert stop.result(10) == {} and start.transaction_id == 99
    assert [(action, payload.get("transactionId")) for action, payload in link.calls] == [
        ("StartTransaction", None), ("StartTransaction", None), ("StopTransaction", 99)]


def test_a_direct_send_never_overtakes_what_is_queued():
    from ocpp_sync.chargepoint.outbox import Outbox
    link = DirectLink()
    outbox = Outbox(OfflineQueue(), version="2.0.1", name="test")
    try:
        first = outbox.submit("TransactionEvent", event201("Started", 0))  # offline: queued
        outbox.online(link)  # the outbox thread has not picked it up yet (not even started)
        second = outbox.send("TransactionEvent", event201("Ended", 1))
        assert not second.done() and link.calls == [] and len(outbox) == 2
        outbox.start()
        assert first.result(10) == {} and second.result(10) == {}
        assert [payload["seqNo"] for _, payload in link.accepted] == [0, 1]
        assert len(link.threads) == 2 and threading.get_ident() not in link.threads
    finally:
        outbox.stop()
        outbox.queue.close()


def test_a_failed_direct_send_holds_everything_for_its_retry_wait(make_outbox):
    from ocpp_sync.errors import CallError, ConnectionClosed
    from ocpp_sync.protocol.retry import TransactionRetry
    link = DirectLink()
    outbox = make_outbox(link, retry=TransactionRetry(attempts=3, interval=60))
    outbox.online(link)
    link.script = {0: CallError("InternalError")}
    failed = outbox.send("TransactionEvent", event201("Started", 0))
    behind = outbox.send("TransactionEvent", event201("Updated", 1))
    assert not failed.done() and not behind.done() and len(outbox) == 2
    assert not link.wait(lambda: len(link.calls) > 1, 0.3)  # neither it nor the one behind goes before 60 s
    assert [(m.payload["seqNo"], m.attempts) for m in outbox.queue.messages()] == [(0, 1), (1, 0)]
    outbox.stop()  # ends the wait at once
    assert isinstance(failed.exception(0), ConnectionClosed) and len(outbox.queue) == 2


def test_stop_waits_for_a_direct_send_to_be_stored_or_answered(make_outbox):
    from ocpp_sync.errors import ConnectionClosed
    link = DirectLink()
    outbox = make_outbox(link)
    outbox.online(link)
    link.hold.clear()
    link.script = {0: ConnectionClosed("lost")}
    thread, box = send_in_thread(outbox, link, "TransactionEvent", event201("Started", 0))
    stopped = threading.Event()
    stopper = threading.Thread(target=lambda: (outbox.stop(), stopped.set()))
    stopper.start()
    assert not stopped.wait(0.3)  # the owner may close the queue after stop(): not while this is unsettled
    link.hold.set()
    assert stopped.wait(10)
    thread.join(10)
    stopper.join(10)
    assert isinstance(box["handle"].exception(0), ConnectionClosed)
    assert [m.payload["seqNo"] for m in outbox.queue.messages()] == [0]  # kept for the next run
