"""The turnstile: a CSMS's connections work on what they read in arrival order.

The unit tests pin the queue (first come, first served; a holder back from a
handler goes first; a stuck holder is overtaken, a long queue is not). The
CSMS tests pin the two ways it must never hold stations up: a handler that
blocks, and a station that stops reading.
"""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone

import pytest
import websocket
from support.raw import WAIT, wait_until

from ocpp_sync import v16
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.scheduling import turnstile as _turnstile
from ocpp_sync.scheduling.turnstile import Turnstile
from ocpp_sync.testing import connected_charge_point, csms_url

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def queue_up(turnstile, name, log, *, first=False, hold=None):
    """Start a thread that takes a turn, notes ``name`` in ``log``, holds it until ``hold``
    is set (if given) and leaves; returns once the thread waits in the queue."""
    waiting = turnstile.waiting

    def run():
        turnstile.enter(first=first)
        log.append(name)
        if hold is not None:
            hold.wait(WAIT)
        turnstile.leave()

    thread = threading.Thread(target=run, name=f"test-{name}", daemon=True)
    thread.start()
    # Or it has the turn already: handed over by the timer, if the test thread was slow to look.
    assert wait_until(lambda: turnstile.waiting == waiting + 1 or name in log), \
        f"{name} never queued"
    return thread


@pytest.fixture
def turnstiles():
    """Makes turnstiles (``turnstiles(patience)``) and closes them after the test, so their
    watch leaves the deadline timer's thread free to end."""
    made = []

    def make(patience):
        made.append(Turnstile(patience=patience))
        return made[-1]

    yield make
    for turnstile in made:
        turnstile.close()


def finish(threads):
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), f"{thread.name} is stuck"


def test_turns_are_handed_over_in_arrival_order(turnstiles):
    turnstile, order = turnstiles(WAIT * 6), []
    turnstile.enter()
    threads = [queue_up(turnstile, n, order) for n in range(8)]
    turnstile.leave()
    finish(threads)
    assert order == list(range(8))
    assert not turnstile.waiting and not turnstile.holds()


def test_a_holder_back_from_its_handler_goes_first(turnstiles):
    turnstile, order = turnstiles(WAIT * 6), []
    turnstile.enter()
    threads = [queue_up(turnstile, "new", order), queue_up(turnstile, "back", order, first=True)]
    turnstile.leave()
    finish(threads)
    assert order == ["back", "new"]


def test_leaving_without_the_turn_hands_nothing_over(turnstiles):
    turnstile, order = turnstiles(WAIT * 6), []
    turnstile.enter()
    waiter = queue_up(turnstile, "waiter", order)
    outsider = threading.Thread(target=turnstile.leave, name="test-outsider")
    outsider.start()
    finish([outsider])
    assert turnstile.holds() and turnstile.waiting == 1 and order == []
    turnstile.leave()
    finish([waiter])
    assert order == ["waiter"]


def test_a_turn_held_past_the_patience_is_taken_over(turnstiles):
    turnstile, order, release = turnstiles(0.5), [], threading.Event()
    turnstile.enter()          # and never leave: a holder stuck in a call that blocks
    started = time.monotonic()
    taker = queue_up(turnstile, "taker", order, hold=release)
    assert wait_until(lambda: order == ["taker"]), "the stuck turn was never taken over"
    assert time.monotonic() - started >= 0.5
    assert not turnstile.holds()
    turnstile.leave()          # the old holder's leave must not hand the taker's turn on
    later = []
    late = queue_up(turnstile, "late", later)
    assert not wait_until(lambda: later != [], timeout=0.2), "the old holder handed it over"
    release.set()
    finish([taker, late])
    assert later == ["late"]


def test_a_long_queue_of_short_holds_is_not_a_takeover(turnstiles):
    """Waiting longer than the patience is normal under load: only a long hold is timed."""
    turnstile, order, first_hold, second_hold = turnstiles(1.0), [], threading.Event(), \
        threading.Event()
    turnstile.enter()
    threads = [queue_up(turnstile, "a", order, hold=first_hold),
               queue_up(turnstile, "b", order, hold=second_hold)]
    pause = threading.Event()
    pause.wait(0.6)
    turnstile.leave()           # a 0.6 s hold; "a" takes the turn
    pause.wait(0.6)
    # "b" has now waited 1.2 s, past the patience, but behind holds of 0.6 s each: it
    # must not have overtaken "a" (timing its own wait, it would have at 1.0 s).
    assert order == ["a"]
    first_hold.set()
    assert wait_until(lambda: order == ["a", "b"])
    second_hold.set()
    finish(threads)


def now():
    return datetime.now(timezone.utc)


@pytest.fixture
def patient_csms(monkeypatch):
    """A 1.6 CSMS whose turns are never taken over within a test: only stepping out of
    the turn can let other stations through."""
    monkeypatch.setattr(_turnstile, "PATIENCE", WAIT * 6)
    csms = CSMS(versions=("1.6",), timeout=WAIT)
    csms.on(v16.HeartbeatRequest)(lambda station, request: v16.HeartbeatResponse(current_time=now()))
    yield csms
    csms.stop()


def test_stations_calls_wait_for_the_csms_turn(patient_csms):
    patient_csms.start("127.0.0.1", 0)
    turnstile = patient_csms._server._turnstile
    with connected_charge_point(patient_csms, "1.6", timeout=WAIT) as (cp, _):
        turnstile.enter()
        answer = cp.send_async(v16.HeartbeatRequest())
        assert wait_until(lambda: turnstile.waiting == 1), "the call never queued for a turn"
        assert not answer.done()
        turnstile.leave()
        assert isinstance(answer.result(WAIT), v16.HeartbeatResponse)


def test_a_handler_that_blocks_holds_up_no_other_station(patient_csms):
    entered, release = threading.Event(), threading.Event()

    @patient_csms.on(v16.BootNotificationRequest)
    def boot(station, request):
        entered.set()
        release.wait(WAIT * 3)
        return v16.BootNotificationResponse(current_time=now(), interval=300, status="Accepted")

    patient_csms.start("127.0.0.1", 0)
    try:
        with connected_charge_point(patient_csms, "1.6", timeout=WAIT) as (slow, _), \
                connected_charge_point(patient_csms, "1.6", timeout=WAIT) as (quick, _):
            booting = slow.send_async(v16.BootNotificationRequest(charge_point_model="m",
                                                                  charge_point_vendor="v"))
            assert entered.wait(WAIT)
            for _ in range(3):
                quick.send(v16.HeartbeatRequest(), timeout=WAIT)
            release.set()
            assert booting.result(WAIT).status == "Accepted"
    finally:
        release.set()


def test_a_station_that_stops_reading_holds_up_no_other_station(patient_csms):
    answered = threading.Event()

    @patient_csms.on(v16.DataTransferRequest)
    def data_transfer(station, request):
        answered.set()
        # More than the kernel buffers between us and a reader that takes nothing.
        return v16.DataTransferResponse(status="Accepted", data="x" * (8 << 20))

    patient_csms.start("127.0.0.1", 0, write_timeout=WAIT * 6)
    stuck = websocket.create_connection(
        csms_url(patient_csms, "/ocpp/stuck"), subprotocols=["ocpp1.6"], timeout=WAIT,
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    try:
        with connected_charge_point(patient_csms, "1.6", timeout=WAIT) as (quick, _):
            stuck.send('[2,"big","DataTransfer",{"vendorId":"v"}]')
            assert answered.wait(WAIT)
            for _ in range(3):
                quick.send(v16.HeartbeatRequest(), timeout=WAIT)
    finally:
        stuck.shutdown()
