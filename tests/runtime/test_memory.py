"""Giving the memory of stations that left back: one trim per burst of leavers, none after stop."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from support.raw import WAIT

from ocpp_sync.runtime import memory
from ocpp_sync.runtime.memory import MemoryReturn
from ocpp_sync.scheduling.deadlines import DeadlineTimer
from ocpp_sync.testing import connected_charge_point, running_csms


class Trims:
    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.done.set()


@pytest.fixture
def timer() -> Iterator[DeadlineTimer]:
    timer = DeadlineTimer("test-memory-timer", linger=0.05)
    yield timer
    timer.stop_if_idle()


def test_a_burst_of_departures_is_one_trim(timer: DeadlineTimer) -> None:
    trims = Trims()
    returner = MemoryReturn(trims, delay=0.05, timer=timer)
    for _ in range(50):
        returner.station_left()
    assert trims.done.wait(WAIT)
    assert trims.count == 1
    trims.done.clear()
    returner.station_left()   # a later departure: a trim of its own
    assert trims.done.wait(WAIT)
    assert trims.count == 2


def test_no_trim_after_stop(timer: DeadlineTimer) -> None:
    trims = Trims()
    returner = MemoryReturn(trims, delay=0.05, timer=timer)
    returner.station_left()
    returner.stop()
    returner.station_left()
    assert not trims.done.wait(0.3)   # a bounded wait for something that must not happen
    assert trims.count == 0


def test_without_glibc_nothing_is_scheduled(timer: DeadlineTimer) -> None:
    MemoryReturn(None, timer=timer).station_left()
    assert timer._thread is None


def test_a_station_that_leaves_the_csms_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    trims = Trims()
    monkeypatch.setattr("ocpp_sync.csms.csms.glibc_trim", lambda: trims)
    with running_csms(("1.6",), timeout=WAIT) as csms:
        with connected_charge_point(csms, "1.6", timeout=WAIT):
            pass
        assert trims.done.wait(WAIT)


@pytest.mark.skipif(memory.glibc_trim() is None, reason="not glibc")
def test_the_arena_cap_takes_on_glibc() -> None:
    assert memory.cap_malloc_arenas(8 * (os.cpu_count() or 1))   # glibc's own default cap
    with pytest.raises(ValueError):
        memory.cap_malloc_arenas(0)


@pytest.mark.parametrize("gc_freeze", [True, False])
def test_the_first_start_freezes_the_start_up_heap_once(monkeypatch: pytest.MonkeyPatch, gc_freeze: bool) -> None:
    import gc

    freezes: list[int] = []
    monkeypatch.setattr(memory, "_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1))
    with running_csms(("1.6",), timeout=WAIT, gc_freeze=gc_freeze):
        pass
    with running_csms(("1.6",), timeout=WAIT, gc_freeze=gc_freeze):
        pass
    assert freezes == ([1] if gc_freeze else [])
