"""The ``ocpp-sync`` command and the simulator behind it, over real loopback sockets."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from support.background import ENV, Background

import ocpp_sync
from ocpp_sync import cli, v16, v201
from ocpp_sync.sim import CentralSystem, Exchange, StationSimulator

WAIT = 30.0


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocpp_sync.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def cli_process(*args: str) -> Background:
    return Background([sys.executable, "-m", "ocpp_sync.cli", *args], wait=WAIT)


@pytest.mark.parametrize("version, transaction_messages, command", [
    ("1.6", ["StartTransaction", "MeterValues", "StopTransaction"], "RemoteStopTransaction"),
    ("2.0.1", ["TransactionEvent"], "RequestStopTransaction"),
], ids=["1.6", "2.0.1"])
def test_demo_runs_a_whole_session(version: str, transaction_messages: list[str],
                                   command: str) -> None:
    done = run_cli("demo", "--version", version)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for action in ["BootNotification", "Heartbeat", "StatusNotification", "Authorize",
                   *transaction_messages, command]:
        assert f"CP -> CSMS  {action}" in out or f"CP <- CSMS  {action}" in out, action
    assert f"CP <- CSMS  {command}" in out  # the CSMS-initiated command
    assert "ended (Remote)" in out
    assert f"OCPP {version} session completed" in out


def test_console_script_runs_the_demo() -> None:
    script = Path(sys.executable).with_name("ocpp-sync")
    if not script.exists():
        pytest.skip("the package is not installed with its console script in this environment")
    done = subprocess.run([str(script), "demo"], capture_output=True, text=True, timeout=60, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "OCPP 1.6 session completed" in done.stdout


def test_demo_in_process_returns_zero_and_leaves_no_threads(capsys: Any) -> None:
    before = set(threading.enumerate())
    assert cli.main(["demo", "--version", "2.1"]) == 0
    assert "OCPP 2.1 session completed" in capsys.readouterr().out
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []


def start_csms_command(*options: str) -> tuple[Background, str]:
    csms = cli_process("csms", "--port", "0", "--heartbeat-interval", "1", *options)
    port = csms.expect(r"listening on ws://127\.0\.0\.1:(\d+)/").group(1)
    return csms, f"ws://127.0.0.1:{port}/ocpp"


@pytest.fixture(scope="module")
def csms_command():
    csms, url = start_csms_command()
    yield csms, url
    csms.kill()


@pytest.mark.parametrize("version, station_id, samples, interval, ended", [
    ("1.6", "SIM_16", "3", "1", "StopTransaction "),
    ("2.0.1", "SIM_201", "1", "0", 'TransactionEvent                 {"eventType": "Ended"'),
], ids=["1.6", "2.0.1"])
def test_station_command_runs_once_against_the_csms_command(
        csms_command: tuple[Background, str], version: str, station_id: str, samples: str,
        interval: str, ended: str) -> None:
    csms, url = csms_command
    station = run_cli("station", url, "--id", station_id, "--version", version, "--once",
                      "--samples", samples, "--interval", interval)
    assert station.returncode == 0, station.stderr
    assert f"{station_id} done: 1 transaction(s)" in station.stdout
    if samples == "3":
        # The boot answer said heartbeat every second, and charging took three.
        assert "CP -> CSMS  Heartbeat" in station.stdout
    csms.expect(rf"\[{station_id}\] disconnected")
    assert f"[{station_id}] connected (OCPP {version})" in csms.text
    assert f"[{station_id}] CP -> CSMS  BootNotification" in csms.text
    assert f"[{station_id}] CP -> CSMS  {ended}" in csms.text


def test_station_command_stays_connected_until_ctrl_c(csms_command: tuple[Background, str]) -> None:
    csms, url = csms_command
    stays = cli_process("station", url, "--id", "STAYS", "--samples", "1", "--interval", "0")
    try:
        stays.expect(r"StopTransaction \(result\)")
        assert stays.process.poll() is None
        assert stays.interrupt() == 0
    finally:
        stays.kill()
    assert "STAYS done: 1 transaction(s)" in stays.text
    csms.expect(r"\[STAYS\] disconnected")


def test_csms_command_stops_on_ctrl_c_and_its_stations_notice() -> None:
    csms, url = start_csms_command()
    try:
        orphan = cli_process("station", url, "--id", "ORPHAN", "--samples", "1", "--interval", "0")
        try:
            orphan.expect(r"StopTransaction \(result\)")
            orphan.expect(r"StatusNotification \(result\)")  # now idle, just connected
            assert csms.interrupt() == 0
            assert orphan.process.wait(WAIT) == 1
            orphan.reader.join(WAIT)
        finally:
            orphan.kill()
    finally:
        csms.kill()
    assert "the CSMS closed the connection" in orphan.text
    assert "[ORPHAN] disconnected" in csms.text
    assert csms.text.rstrip().endswith("CSMS stopped")


def test_station_command_fails_when_no_csms_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_cli("station", f"ws://127.0.0.1:{port}/", "--id", "NOBODY", "--once", timeout=30)
    assert done.returncode == 1
    assert "station failed" in done.stderr


# -- the simulator's answers to CSMS commands, in process ------------------------

class Seen:
    """Exchanges as the CSMS reported them, waitable."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.items: list[Exchange] = []

    def __call__(self, exchange: Exchange) -> None:
        with self.changed:
            self.items.append(exchange)
            self.changed.notify_all()

    def count(self, action: str) -> int:
        return sum(1 for e in self.items if e.kind == "request" and e.sender == "station"
                   and e.action == action)

    def wait_until(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, WAIT), [e.action for e in self.items]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_simulated_station_obeys_the_csms(version: str) -> None:
    m = v16 if version == "1.6" else v201
    ended = "StopTransaction" if version == "1.6" else "TransactionEvent"
    seen = Seen()
    csms = ocpp_sync.CSMS(versions=(version,), timeout=WAIT)
    central = CentralSystem(report=seen)
    central.install(csms)
    csms.start("127.0.0.1", 0)
    sim = StationSimulator(f"ws://127.0.0.1:{csms.port}", "OBEDIENT", version, timeout=WAIT)
    stop = threading.Event()
    runner = threading.Thread(target=sim.run, args=(stop,), kwargs={"samples": 1, "interval": 0},
                              name="test-simulator")
    try:
        sim.connect()
        runner.start()
        station = csms.wait_for_station("OBEDIENT", timeout=WAIT)
        seen.wait_until(lambda: sim.transactions_done == 1)

        if version == "1.6":
            start = m.RemoteStartTransactionRequest(id_tag="REMOTE-TAG", connector_id=1)
            stop_unknown = m.RemoteStopTransactionRequest(transaction_id=999)
            reset = m.ResetRequest(type="Soft")
        else:
            start = m.RequestStartTransactionRequest(
                id_token=m.IdTokenType(id_token="REMOTE-TAG", type="Central"), remote_start_id=7)
            stop_unknown = m.RequestStopTransactionRequest(transaction_id="unknown")
            reset = m.ResetRequest(type="Immediate")
        assert station.send(start).status == "Accepted"
        seen.wait_until(lambda: sim.transactions_done == 2)
        assert station.send(stop_unknown).status == "Rejected"

        assert station.send(m.TriggerMessageRequest(requested_message="Heartbeat")).status == "Accepted"
        seen.wait_until(lambda: seen.count("Heartbeat") == 1)
        assert station.send(reset).status == "Accepted"
        seen.wait_until(lambda: seen.count("BootNotification") == 2)
        unlock = (m.UnlockConnectorRequest(connector_id=1) if version == "1.6"
                  else m.UnlockConnectorRequest(evse_id=1, connector_id=1))
        assert station.send(unlock).status == "Unlocked"
        if version == "1.6":
            assert station.send(m.ChangeConfigurationRequest(key="NumberOfConnectors",
                                                             value="4")).status == "Rejected"
            assert station.send(m.ChangeConfigurationRequest(key="Nope",
                                                             value="1")).status == "NotSupported"
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(WAIT)
        sim.close()
        csms.stop()
    assert not runner.is_alive()
    remote = [t for (sid, _), t in central.transactions.items() if t.get("id_tag") == "REMOTE-TAG"]
    assert len(remote) == 1 and remote[0]["meter_stop"] > remote[0]["meter_start"]
    assert seen.count(ended) >= 2


def test_demo_fails_with_a_non_zero_status_when_the_csms_misbehaves(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class RejectingCentralSystem(CentralSystem):
        def _handlers_16(self, m: Any) -> dict[str, Callable[[Any, Any], Any]]:
            handlers = super()._handlers_16(m)
            handlers["BootNotification"] = lambda station, request: m.BootNotificationResponse(
                current_time=datetime.now(timezone.utc), interval=10, status=m.RegistrationStatus.REJECTED)
            return handlers

    monkeypatch.setattr(cli, "CentralSystem", RejectingCentralSystem)
    assert cli.main(["demo"]) == 1
    assert "demo failed: the CSMS did not accept the boot" in capsys.readouterr().err


def test_csms_command_refuses_versions_it_was_not_given() -> None:
    csms, url = start_csms_command("--version", "1.6")
    try:
        refused = run_cli("station", url, "--id", "NEWER", "--version", "2.0.1", "--once")
        assert refused.returncode == 1
        # The OCPP-J refusal (a 101 naming no subprotocol, then a close), which the station takes
        # as permanent: it stops at once instead of retrying.
        assert "HandshakeError" in refused.stderr and "none of the subprotocols" in refused.stderr
        assert csms.interrupt() == 0
    finally:
        csms.kill()
    assert "(OCPP 1.6)" in csms.text
    assert "[NEWER]" not in csms.text


def test_version_option_prints_the_package_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ocpp-sync {ocpp_sync.__version__}\n"
