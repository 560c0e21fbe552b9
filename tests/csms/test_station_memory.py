"""A station that leaves is freed by reference counting alone: no cycle holds its objects.

Payload dicts are untracked by the cyclic GC, so a busy CSMS may run for long without a
full collection: whatever a closed connection keeps in a cycle stays until one comes.
"""
from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from support.raw import WAIT, wait_until

from ocpp_sync import v16
from ocpp_sync.testing import connected_charge_point, running_csms


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic GC off for the test; back on (and run once) whatever happens."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.usefixtures("no_cyclic_gc")
def test_a_station_that_leaves_is_freed_without_the_cyclic_gc() -> None:
    with running_csms(("1.6",)) as csms:
        with connected_charge_point(csms, "1.6", "CP_FREED") as (cp, station):
            @cp.on(v16.GetConfigurationRequest)
            def get_configuration(request: Any) -> Any:
                return v16.GetConfigurationResponse(configuration_key=[])

            cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1"))
            for _ in range(5):
                cp.send(v16.HeartbeatRequest())
            station.send(v16.GetConfigurationRequest())
            station.send_async(v16.GetConfigurationRequest()).result(WAIT)
            station.expect(v16.BootNotificationRequest, timeout=WAIT)
            station_ref, connection_ref = weakref.ref(station), weakref.ref(station._connection)
            history_ref = weakref.ref(station.history)
            del station
        assert wait_until(lambda: "CP_FREED" not in csms.stations)
        assert wait_until(lambda: station_ref() is None and connection_ref() is None
                          and history_ref() is None), _holders(station_ref())


def _holders(obj: Any) -> str:
    """For the failure message: who still points at the station."""
    if obj is None:
        return "the station was freed, but its connection or history was not"
    return "held by " + ", ".join(type(r).__name__ for r in gc.get_referrers(obj))


@pytest.mark.usefixtures("no_cyclic_gc")
def test_a_station_replaced_by_its_reconnection_is_freed_without_the_cyclic_gc() -> None:
    with running_csms(("1.6",)) as csms:
        with connected_charge_point(csms, "1.6", "CP_AGAIN") as (first_cp, first):
            first_cp.send(v16.HeartbeatRequest())
            first_ref = weakref.ref(first)
            del first
            with connected_charge_point(csms, "1.6", "CP_AGAIN") as (cp, station):
                assert wait_until(lambda: first_ref() is None), _holders(first_ref())
                cp.send(v16.HeartbeatRequest())
                assert csms.stations["CP_AGAIN"] is station
