"""Each example central system and charge point, run as is against each other."""
from __future__ import annotations

import importlib.util
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.background import ENV, Background

from ocpp_sync.sim import Exchange, StationSimulator

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
WAIT = 60.0


def example_process(name: str, *args: str) -> Background:
    return Background([sys.executable, str(EXAMPLES / name), *args], wait=WAIT, cwd=EXAMPLES.parent)


@pytest.mark.parametrize("central_system, charge_point, station_says, csms_says", [
    ("central_system_v16.py", "charge_point_v16.py",
     [r"boot: Accepted", r"transaction 1 started", r"transaction 1 stopped \(Remote\)"],
     [r"CP_1: booted \(ACME X1\)", r"CP_1: remote stop of transaction 1: Accepted",
      r"CP_1: transaction 1 ended at \d+ Wh", r"CP_1: connector 1 is Available"]),
    ("central_system_v201.py", "charge_point_v201.py",
     [r"boot: Accepted", r"token TOKEN-001: Accepted", r"ended \(remote stop\)"],
     [r"CS_1: booted \(ACME X2, reason PowerUp\)", r"CS_1: HeartbeatInterval is 300 \(Accepted\)",
      r"CS_1: remote stop of \S+: Accepted", r"CS_1: transaction \S+ Ended"]),
], ids=["1.6", "2.0.1"])
def test_example_pair_runs_against_each_other(central_system: str, charge_point: str,
                                              station_says: list[str],
                                              csms_says: list[str]) -> None:
    csms = example_process(central_system, "--port", "0")
    try:
        port = csms.expect(r"listening on ws://127\.0\.0\.1:(\d+)/").group(1)
        station = subprocess.run([sys.executable, str(EXAMPLES / charge_point), "--port", port],
                                 capture_output=True, text=True, timeout=WAIT, env=ENV)
        assert station.returncode == 0, station.stdout + station.stderr
        for pattern in station_says:
            assert re.search(pattern, station.stdout), (pattern, station.stdout)
        csms.expect(r"remote stop of .*: Accepted")  # printed once the station has answered
        # Ctrl-C stops the central system cleanly.
        csms.process.send_signal(signal.SIGINT)
        assert csms.wait() == 0
    finally:
        csms.kill()
    for pattern in csms_says:
        assert re.search(pattern, csms.text, re.MULTILINE), (pattern, csms.text)
    assert csms.text.rstrip().endswith("CSMS stopped")
    assert "Traceback" not in csms.text


# -- smart charging end to end: the example CSMS caps the charge, the simulated station follows ------

@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_smart_charging_scenario_charges_under_the_csms_limit(version: str) -> None:
    csms = example_process("smart_charging_csms.py", "--port", "0")
    try:
        port = csms.expect(r"listening on ws://127\.0\.0\.1:(\d+)/").group(1)
        station = subprocess.run(
            [sys.executable, "-m", "ocpp_sync.cli", "station", f"ws://127.0.0.1:{port}/ocpp", "--id", "SMART_1",
             "--version", version, "--scenario", str(EXAMPLES / "scenario_smart_charging.json")],
            capture_output=True, text=True, timeout=WAIT, env=ENV)
        assert station.returncode == 0, station.stdout + station.stderr
        csms.expect(r"SMART_1: transaction \S+ meter 687 Wh")  # the last sample: printed once answered
        csms.process.send_signal(signal.SIGINT)
        assert csms.wait() == 0
    finally:
        csms.kill()
    # 60 s samples: 11 kW is 183 Wh, 6 A on three phases of 230 V 69 Wh
    steps = re.findall(r"\] meter .* ok +(.*) \(\d+\.\d+ s\)$", station.stdout, re.MULTILINE)
    assert steps == [
        "2 sample(s), 366 Wh at 11000 W", "2 sample(s), 504 Wh at 4140 W", "1 sample(s), 687 Wh at 11000 W"]
    rates = re.findall(r"SMART_1: transaction \S+ meter \d+ Wh \(\+(\d+) Wh\)", csms.text)
    assert [int(r) for r in rates] == [183, 183, 69, 69, 183]
    assert re.search(r"SMART_1: limit of 6 A: Accepted; composite schedule 6 A from 0 s", csms.text)
    assert csms.text.rstrip().endswith("CSMS stopped") and "Traceback" not in csms.text


# -- the example CSMSs answer everything `ocpp-sync station` sends ---------------------------------

# Every charge-point-initiated action the simulator can send, by version family.
SIMULATOR_SENDS = {
    "1.6": {"BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
            "MeterValues", "StopTransaction"},
    "2.0.1": {"BootNotification", "Heartbeat", "StatusNotification", "Authorize", "TransactionEvent",
              "MeterValues"},
}
EXAMPLE_CSMSS = [
    ("central_system_v16.py", None, ("1.6",)),
    ("central_system_v201.py", None, ("2.0.1",)),
    ("flask_csms/app.py", "flask", ("1.6", "2.0.1")),
    ("django_csms/csms_site/ocpp.py", None, ("1.6", "2.0.1")),   # the handlers need no Django
]


def load_example_csms(relative: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module-level CSMS of an example, imported afresh (each import builds a new one)."""
    path = EXAMPLES / relative
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.csms


@pytest.mark.parametrize("example, needs, version", [
    (name, needs, version) for name, needs, versions in EXAMPLE_CSMSS for version in versions])
def test_example_csms_answers_every_message_the_simulator_sends(
        example: str, needs: str | None, version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if needs is not None:
        pytest.importorskip(needs)
    csms = load_example_csms(example, monkeypatch)
    exchanges: list[Exchange] = []
    csms.start("127.0.0.1", 0)
    sim = StationSimulator(f"ws://127.0.0.1:{csms.port}/ocpp", f"EX_{version}", version, timeout=WAIT,
                           report=exchanges.append)
    try:
        sim.connect()
        assert sim.boot().status == "Accepted"
        sim.heartbeat()
        sim.status("Available")
        assert sim.authorize()
        sim.start_transaction()
        sim.meter_values()
        sim.stop_transaction()
        sim.meter_values()  # outside a transaction: 2.x sends MeterValues, not TransactionEvent
    finally:
        sim.close()
        csms.stop()
    assert [e for e in exchanges if e.kind == "error"] == []
    assert {e.action for e in exchanges if e.sender == "station"} == SIMULATOR_SENDS[version]


# -- the newcomer's path: the simulator against the Flask example, with a password, across a restart --

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_simulator_logs_in_to_the_flask_example_and_survives_its_restart() -> None:
    pytest.importorskip("flask")
    port = str(_free_port())
    passwords = {"STATION_PASSWORDS": "CP_1=secret,CP_2=other"}

    def flask_csms() -> Background:
        app = Background([sys.executable, "app.py", "--port", port], wait=WAIT,
                         cwd=EXAMPLES / "flask_csms", env=passwords)
        app.expect(rf"Running on http://127\.0\.0\.1:{port}")
        return app

    first = flask_csms()
    station = Background([sys.executable, "-m", "ocpp_sync.cli", "station",
                          f"ws://127.0.0.1:{port}/ocpp", "--id", "CP_1", "--samples", "1",
                          "--interval", "0", "--reconnect-wait", "0.2"],
                         wait=WAIT, env={"OCPP_SYNC_PASSWORD": "secret"})
    second = None
    try:
        station.expect(r"StopTransaction \(result\)")    # logged in (a wrong password is a 401)
        station.expect(r"StatusNotification \(result\)")  # Available again, idle
        first.kill()                                      # the CSMS goes away without a goodbye
        station.expect(r"CP_1: reconnect attempt 1 in")
        second = flask_csms()
        station.expect(r"CP_1: connected to the CSMS again")
        station.expect(r"BootNotification \(result\)\s+\{\"status\": \"Accepted\"")
        assert station.interrupt() == 130, station.text
    finally:
        station.kill()
        first.kill()
        if second is not None:
            second.kill()
    assert "secret" not in station.text
    assert "Traceback" not in station.text and "the CSMS closed the connection" not in station.text
