"""The simulated station against CSMSs that are not ours: refusals it can live with, restarts."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync.sim import CentralSystem, Exchange, StationSimulator, StepResult, parse_scenario, run_scenario
from ocpp_sync.sim.station import NON_ESSENTIAL

WAIT = 20.0


def minimal_csms(version: str) -> ocpp_sync.CSMS:
    """A CSMS that answers boots, tags and transactions, and nothing else (NotSupported)."""
    csms = ocpp_sync.CSMS(versions=(version,), timeout=WAIT)

    class EssentialsOnly:
        versions = csms.versions

        @staticmethod
        def on(request_cls: type) -> Callable[[Any], Any]:
            if request_cls.__name__.removesuffix("Request") in NON_ESSENTIAL:
                return lambda handler: handler
            return csms.on(request_cls)

    CentralSystem(heartbeat_interval=1).install(EssentialsOnly())
    return csms


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_callerror_to_a_non_essential_message_is_logged_and_the_station_goes_on(
        version: str, caplog: pytest.LogCaptureFixture) -> None:
    csms = minimal_csms(version)
    csms.start("127.0.0.1", 0)
    exchanges: list[Exchange] = []
    sim = StationSimulator(f"ws://127.0.0.1:{csms.port}", "PICKY", version, timeout=WAIT,
                           report=exchanges.append)
    caplog.set_level(logging.WARNING, logger="ocpp_sync.simulator")
    try:
        sim.connect()
        sim.run(threading.Event(), once=True, samples=2, interval=0)
        assert sim.heartbeat() is None
    finally:
        sim.close()
        csms.stop()
    assert sim.transactions_done == 1
    refused = {e.action for e in exchanges if e.kind == "error"}
    assert "StatusNotification" in refused and "Heartbeat" in refused
    assert refused <= NON_ESSENTIAL
    assert "CALLERROR NotSupported to StatusNotification" in caplog.text


def test_a_refused_boot_is_still_an_error() -> None:
    csms = ocpp_sync.CSMS(versions=("2.0.1",), timeout=WAIT)
    csms.start("127.0.0.1", 0)   # no handlers at all: BootNotification gets NotSupported
    sim = StationSimulator(f"ws://127.0.0.1:{csms.port}", "UNBOOTED", "2.0.1", timeout=WAIT)
    try:
        sim.connect()
        with pytest.raises(ocpp_sync.CallError):
            sim.boot()
    finally:
        sim.close()
        csms.stop()


def test_the_non_essential_messages_are_the_documented_ones() -> None:
    lab = (Path(__file__).resolve().parent.parent.parent / "docs" / "lab.md").read_text(encoding="utf-8")
    for action in NON_ESSENTIAL:
        assert f"`{action}`" in lab
    assert NON_ESSENTIAL == {"StatusNotification", "Heartbeat", "MeterValues", "DataTransfer"}



def test_a_scenario_goes_on_past_a_refused_status_and_says_so() -> None:
    csms = minimal_csms("1.6")
    csms.start("127.0.0.1", 0)
    sim = StationSimulator(f"ws://127.0.0.1:{csms.port}", "PICKY_SCENARIO", "1.6", timeout=WAIT)
    results: list[StepResult] = []
    try:
        sim.connect()
        steps = parse_scenario(["boot", {"status": {"status": "Available"}}, "heartbeat", "start",
                                {"meter": {"interval": 0}}, "stop"])
        assert run_scenario(sim, steps, results.append)
    finally:
        sim.close()
        csms.stop()
    assert [r.ok for r in results] == [True] * 6
    assert "refused by the CSMS" in results[1].result and "refused by the CSMS" in results[2].result
    assert "1 refused by the CSMS" in results[4].result


def test_ctrl_c_while_the_heartbeat_thread_starts_leaves_close_working(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sim = StationSimulator("ws://127.0.0.1:9/ocpp", "HB_INTERRUPTED", "1.6")  # never connected

    def interrupted(thread: threading.Thread) -> None:
        raise KeyboardInterrupt  # SIGINT inside Thread.start(), before the thread counts as started

    monkeypatch.setattr(threading.Thread, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sim.start_heartbeats(60)
    monkeypatch.undo()
    sim.close(0)  # raised "cannot join thread before it is started"
