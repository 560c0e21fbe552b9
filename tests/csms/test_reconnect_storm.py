"""A CSMS restarted under its fleet: the stations come back on their back-off, every one.

The new CSMS lets one handshake run at a time and each takes a little while, so
most of the fleet is first refused 503 ("too many connections in their
handshake"): a refusal a station retries on its back-off until it is let in,
never a reason to give up.
"""
from __future__ import annotations

import datetime
import threading
from typing import Any

from ocpp_sync import BackOff
from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.v16 import HeartbeatRequest, HeartbeatResponse

WAIT = 10.0
STATIONS = 30
QUICK = BackOff(wait_minimum=0.05, random_range=0.2, repeat_times=2)


def make_csms(refusals: list[int]) -> CSMS:
    csms = CSMS(versions=("1.6",), max_pending_handshakes=1,
                on_security_event=lambda event: refusals.append(event.status or 0))

    @csms.on(HeartbeatRequest)
    def heartbeat(_station: Any, _request: Any) -> HeartbeatResponse:
        return HeartbeatResponse(current_time=datetime.datetime.now(datetime.timezone.utc))

    return csms


def slow_handshake(_request: Any) -> None:
    """Hold each handshake a moment, so arrivals pile up behind the one at a time."""
    threading.Event().wait(0.01)


def test_every_station_comes_back_after_a_restart_through_503s() -> None:
    refusals: list[int] = []
    first = make_csms(refusals)
    first.start("127.0.0.1", 0)
    port = first.port
    url = f"ws://127.0.0.1:{port}/ocpp"
    stations = [ChargePoint(f"STORM_{i:03d}", url, timeout=WAIT, backoff=QUICK,
                            retry_first_connect=True, ping_interval=None) for i in range(STATIONS)]
    second = make_csms(refusals)
    try:
        for cp in stations:
            cp.connect()
        assert len(first.stations) == STATIONS
        refusals.clear()
        first.stop(timeout=WAIT)   # every station sees 1001 and starts its back-off
        second.start("127.0.0.1", port, check_request=slow_handshake)
        for cp in stations:
            second.wait_for_station(cp.id, timeout=WAIT)
        assert len(second.stations) == STATIONS
        assert refusals.count(503) >= 5   # the storm did hit the cap, and was retried
        assert all(cp.send(HeartbeatRequest()).current_time for cp in stations)
    finally:
        for cp in stations:
            cp.close()
        first.stop(timeout=WAIT)
        second.stop(timeout=WAIT)
