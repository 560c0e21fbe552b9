"""What a notebook does to a library: cells run twice.

A second CSMS on the port of the first gets an error that names the first and
how to stop it; a second charge point under the id of the first takes over,
and the first is told so (close code 4000) and stops reconnecting instead of
taking the id back, for ever, every few seconds.
"""
from __future__ import annotations

import errno
import socket
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from support.raw import WAIT

import ocpp_sync
from ocpp_sync import v16
from ocpp_sync.protocol.retry import BackOff

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def test_a_second_csms_on_a_port_this_process_holds_names_the_first() -> None:
    first = ocpp_sync.CSMS()
    first.start()
    port = first.port
    second = ocpp_sync.CSMS()
    try:
        with pytest.raises(ocpp_sync.AddressInUse) as err:
            second.start(port=port)
        assert isinstance(err.value, OSError) and err.value.errno == errno.EADDRINUSE
        assert err.value.holder is first
        assert f"ocpp_sync.CSMS.listening_on({port}).stop()" in str(err.value)
        assert ocpp_sync.CSMS.listening_on(port) is first
    finally:
        first.stop()
    assert ocpp_sync.CSMS.listening_on(port) is None
    second.start(port=port)   # the port is free once the first has stopped
    try:
        assert ocpp_sync.CSMS.listening_on(port) is second
    finally:
        second.stop()


def test_a_port_another_program_holds_is_said_so() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ocpp_sync.AddressInUse) as err:
            ocpp_sync.CSMS().start(port=port)
    assert err.value.holder is None and "another program" in str(err.value)


def test_a_replaced_charge_point_stops_reconnecting() -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",))
    connects: list[Any] = []
    csms.on_connect = connects.append

    @csms.on(v16.HeartbeatRequest)
    def heartbeat(station: Any, request: Any) -> Any:
        return v16.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    csms.start()
    url = f"ws://127.0.0.1:{csms.port}/ocpp"
    fast = BackOff(wait_minimum=0.01, random_range=0.0, repeat_times=0)
    first = ocpp_sync.ChargePoint("NB_2", url, version="1.6", backoff=fast)
    second = ocpp_sync.ChargePoint("NB_2", url, version="1.6", backoff=fast)
    gone = threading.Event()
    first.on_disconnect = lambda cp: gone.set()
    try:
        first.connect()
        csms.wait_for_station("NB_2", WAIT)
        second.connect()
        assert gone.wait(WAIT)
        # The first's reconnect thread ends by itself: it does not take the id back.
        supervisor = first._supervisor
        assert supervisor is not None
        supervisor.join(WAIT)
        assert not supervisor.is_alive() and not first.connected
        with pytest.raises(ocpp_sync.Replaced) as err:
            first.send(v16.HeartbeatRequest())
        assert isinstance(err.value, ocpp_sync.ConnectionClosed)
        assert second.send(v16.HeartbeatRequest()).current_time
        assert len(connects) == 2 and second.connected
    finally:
        first.close()
        second.close()
        csms.stop()
