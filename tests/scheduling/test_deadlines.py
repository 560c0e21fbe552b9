"""The shared deadline timer that times out send_async calls, since readers no longer poll."""
from __future__ import annotations

import threading
import time

import pytest
from support.raw import WAIT

from ocpp_sync.chargepoint import chargepoint as _chargepoint
from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.errors import CallTimeout
from ocpp_sync.scheduling.deadlines import DeadlineTimer

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def timer_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


@pytest.fixture
def timer():
    timer = DeadlineTimer(name="test-deadlines", linger=60)
    yield timer
    timer.stop_if_idle()


def test_callbacks_fire_in_deadline_order_not_schedule_order(timer):
    fired: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    timer.schedule(now + 0.15, lambda: (fired.append("late"), done.set()))
    timer.schedule(now + 0.05, lambda: fired.append("early"))
    timer.schedule(now, lambda: fired.append("now"))
    assert done.wait(WAIT)
    assert fired == ["now", "early", "late"]


def test_a_cancelled_deadline_never_fires(timer):
    fired: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    cancelled = timer.schedule(now + 0.05, lambda: fired.append("cancelled"))
    timer.schedule(now + 0.1, done.set)
    timer.cancel(cancelled)
    timer.cancel(cancelled)  # twice is harmless
    assert done.wait(WAIT)
    assert fired == []


def test_a_failing_callback_does_not_stop_the_timer(timer, caplog):
    done = threading.Event()
    now = time.monotonic()
    timer.schedule(now, lambda: 1 / 0)
    timer.schedule(now + 0.01, done.set)
    assert done.wait(WAIT)
    assert any("deadline callback failed" in r.getMessage() for r in caplog.records)


def test_the_thread_exists_only_while_a_deadline_is_pending(timer):
    assert timer_threads("test-deadlines") == []
    entry = timer.schedule(time.monotonic() + 3600, lambda: None)
    assert len(timer_threads("test-deadlines")) == 1
    timer.stop_if_idle()  # not idle: a deadline is still pending
    assert len(timer_threads("test-deadlines")) == 1
    timer.cancel(entry)
    timer.stop_if_idle()
    assert timer_threads("test-deadlines") == []
    fired = threading.Event()
    timer.schedule(time.monotonic(), fired.set)  # and it comes back when needed
    assert fired.wait(WAIT)


def test_the_thread_ends_by_itself_after_the_linger():
    timer = DeadlineTimer(name="test-linger", linger=0.05)
    fired = threading.Event()
    timer.schedule(time.monotonic(), fired.set)
    assert fired.wait(WAIT)
    threads = timer_threads("test-linger")
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()


def test_a_later_call_goes_out_when_the_one_before_it_times_out(raw_server, m):
    """The timer, not a reader wake-up, expires the call on the wire and writes the next one."""
    with ChargePoint("CP_1", raw_server.url, version=raw_server.version, timeout=WAIT) as cp:
        peer = raw_server.accept()
        first = cp.send_async(m.HeartbeatRequest(), timeout=0.2)
        second = cp.send_async(m.HeartbeatRequest(), timeout=WAIT)
        peer.receive()  # the first call; never answered
        with pytest.raises(CallTimeout):
            first.result(WAIT)
        call = peer.receive()
        peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}])
        assert second.result(WAIT).current_time.year == 2030


def test_readers_wait_for_messages_without_a_timeout(raw_server, m, monkeypatch):
    """Idle readers must not wake up on a timer: at thousands of connections that is the cost."""
    timeouts: list[float | None] = []
    connect = _chargepoint.open_websocket

    def counting_connect(*args, **kwargs):
        transport = connect(*args, **kwargs)
        receive = transport.receive

        def recording_receive(timeout=None):
            timeouts.append(timeout)
            return receive(timeout)

        transport.receive = recording_receive
        return transport

    monkeypatch.setattr(_chargepoint, "open_websocket", counting_connect)
    with ChargePoint("CP_1", raw_server.url, version=raw_server.version, timeout=WAIT) as cp:
        peer = raw_server.accept()
        future = cp.send_async(m.HeartbeatRequest(), timeout=WAIT)
        call = peer.receive()
        peer.send([3, call[1], {"currentTime": "2030-01-01T00:00:00Z"}])
        future.result(WAIT)
    assert timeouts and set(timeouts) == {None}
