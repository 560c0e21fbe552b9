"""The ``ocpp-sync`` command and the simulator behind it, over real loopback sockets."""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from support.background import ENV, Background

import ocpp_sync
from ocpp_sync import cli, security, v16, v201
from ocpp_sync.sim import CentralSystem, Exchange, ScenarioError, StationSimulator, load_scenario, parse_scenario

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
        assert stays.interrupt() == 130  # Ctrl-C: quietly, with the shell's status
    finally:
        stays.kill()
    assert "STAYS done: 1 transaction(s)" in stays.text
    csms.expect(r"\[STAYS\] disconnected")


def test_csms_command_stops_on_ctrl_c_and_its_stations_notice() -> None:
    csms, url = start_csms_command()
    try:
        orphan = cli_process("station", url, "--id", "ORPHAN", "--samples", "1", "--interval", "0",
                             "--no-reconnect")
        try:
            orphan.expect(r"StopTransaction \(result\)")
            orphan.expect(r"StatusNotification \(result\)")  # now idle, just connected
            assert csms.interrupt() == 130
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
        assert csms.interrupt() == 130
    finally:
        csms.kill()
    assert "(OCPP 1.6)" in csms.text
    assert "[NEWER]" not in csms.text


# -- the command line's edges ---------------------------------------------------------

def test_verbose_is_accepted_after_the_subcommand_too(monkeypatch: pytest.MonkeyPatch) -> None:
    levels: list[int] = []
    monkeypatch.setattr(cli, "run_demo", lambda version: None)
    monkeypatch.setattr(cli.logging, "basicConfig", lambda **options: levels.append(options["level"]))
    assert cli.main(["demo", "-v"]) == 0
    assert cli.main(["-v", "demo", "--verbose"]) == 0  # counted together: every frame
    assert cli.main(["demo"]) == 0
    assert levels == [logging.INFO, logging.DEBUG, logging.WARNING]


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["station", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # however argparse wraps the lines
    assert "meter values per transaction (default: 3)" in out
    assert "(default: 1.6)" in out and "(default: 5.0)" in out
    assert "(default: None)" not in out and "(default: False)" not in out


@pytest.mark.parametrize("url", ["127.0.0.1:9000/ocpp", "http://127.0.0.1:9000/ocpp", "ws:///ocpp",
                                 "ws://127.0.0.1:port/ocpp"])
def test_a_url_that_is_not_a_websocket_url_says_what_was_expected(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["station", url, "--id", "CP_URL", "--once"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "ws://127.0.0.1:9000/ocpp" in err and repr(url) in err, err
    assert "hostname is invalid" not in err


def test_a_yaml_scenario_without_pyyaml_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    path = tmp_path / "scenario.yaml"
    path.write_text("- boot: {}\n")
    with pytest.raises(ScenarioError, match=r"pip install pyyaml \(or write the scenario as JSON\)"):
        load_scenario(str(path))


@pytest.mark.parametrize("steps, message", [
    ([{"stop": {"reasn": "Local"}}], "unknown argument 'reasn', did you mean 'reason'?"),
    ([{"metre": {"samples": 2}}], "unknown step 'metre', did you mean 'meter'?"),
    ([{"start": {"id_tga": "A"}}], "unknown argument 'id_tga', did you mean 'id_tag'?"),
])
def test_a_misspelt_scenario_field_is_named_with_its_close_match(steps: list[Any], message: str) -> None:
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(steps)
    assert message in str(refused.value)


def test_a_field_with_no_close_match_gets_no_guess() -> None:
    with pytest.raises(ScenarioError) as refused:
        parse_scenario([{"stop": {"zzz": 1}}])
    assert "did you mean" not in str(refused.value) and "known: connector, reason" in str(refused.value)


# -- the station command logs in, and reconnects ---------------------------------------

PASSWORD = "s3cret-horse"


@pytest.fixture
def guarded_csms() -> Iterator[ocpp_sync.CSMS]:
    """A CSMS that lets CP_PW in with PASSWORD only (security profile 1), as docs/security.md does."""
    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT,
                          authenticate=security.simple_authenticator({"CP_PW": PASSWORD}))
    CentralSystem(heartbeat_interval=300).install(csms)
    csms.start("127.0.0.1", 0)
    yield csms
    csms.stop()


@pytest.mark.parametrize("how", ["option", "environment", "url"])
def test_station_command_logs_in_with_a_password_it_never_prints(
        guarded_csms: ocpp_sync.CSMS, how: str) -> None:
    url = f"ws://127.0.0.1:{guarded_csms.port}/ocpp"
    options, env = [], dict(ENV)
    if how == "option":
        options = ["--password", PASSWORD]
    elif how == "environment":
        env[cli.PASSWORD_VARIABLE] = PASSWORD
    else:
        url = f"ws://CP_PW:{PASSWORD}@127.0.0.1:{guarded_csms.port}/ocpp"
    done = subprocess.run([sys.executable, "-m", "ocpp_sync.cli", "station", url, "--id", "CP_PW",
                           "--once", "--samples", "1", "--interval", "0", "-vv", *options],
                          capture_output=True, text=True, timeout=WAIT, env=env)
    assert done.returncode == 0, done.stderr
    assert "CP_PW done: 1 transaction(s)" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr  # not even in the DEBUG frame log


def test_station_command_with_a_wrong_password_is_refused(guarded_csms: ocpp_sync.CSMS) -> None:
    done = run_cli("station", f"ws://127.0.0.1:{guarded_csms.port}/ocpp", "--id", "CP_PW", "--once",
                   "--password", "guess", timeout=WAIT)
    assert done.returncode == 1
    assert "station failed: HandshakeError" in done.stderr and "401" in done.stderr, done.stderr


def test_station_command_refuses_a_url_user_that_is_not_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["station", "ws://CP_OTHER:pw@127.0.0.1:9/ocpp", "--id", "CP_PW"])
    assert exited.value.code == 2
    assert "logs in as 'CP_OTHER' but --id is 'CP_PW'" in capsys.readouterr().err


def seen_csms(seen: Seen, port: int = 0) -> ocpp_sync.CSMS:
    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT)
    CentralSystem(heartbeat_interval=300, report=seen).install(csms)
    csms.start("127.0.0.1", port)
    return csms


def test_station_command_reconnects_when_the_csms_restarts_and_says_so() -> None:
    seen = Seen()
    first = seen_csms(seen)
    port = first.port
    station = cli_process("station", f"ws://127.0.0.1:{port}/ocpp", "--id", "COMEBACK",
                          "--samples", "1", "--interval", "0", "--reconnect-wait", "0.2")
    try:
        seen.wait_until(lambda: seen.count("StopTransaction") == 1)
        first.stop()
        station.expect(r"COMEBACK: reconnect attempt 1 in \d+\.\d s")
        second = seen_csms(seen, port)   # the same port, as a restarted CSMS
        try:
            second.wait_for_station("COMEBACK", timeout=WAIT)
            seen.wait_until(lambda: seen.count("BootNotification") == 2)  # it told the new CSMS who it is
            station.expect(r"COMEBACK: connected to the CSMS again")
            assert station.process.poll() is None
            assert station.interrupt() == 130
        finally:
            second.stop()
    finally:
        station.kill()
    assert "COMEBACK connecting to ws://127.0.0.1" in station.text
    assert "the CSMS closed the connection" not in station.text and "Traceback" not in station.text


def test_station_command_stops_reconnecting_when_the_restarted_csms_refuses_it_for_good() -> None:
    seen = Seen()
    first = seen_csms(seen)
    port = first.port
    station = cli_process("station", f"ws://127.0.0.1:{port}/ocpp", "--id", "CP_PW", "--samples", "1",
                          "--interval", "0", "--reconnect-wait", "0.2", "--password", PASSWORD)
    try:
        seen.wait_until(lambda: seen.count("StopTransaction") == 1)
        first.stop()
        station.expect(r"CP_PW: reconnect attempt 1 in")
        changed = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT,
                                 authenticate=security.simple_authenticator({"CP_PW": "rotated"}))
        changed.start("127.0.0.1", port)
        try:
            assert station.wait() == 1  # a 401 will not heal: no waiting forever
        finally:
            changed.stop()
    finally:
        station.kill()
    assert "station failed: HandshakeError" in station.text and "401" in station.text, station.text


def test_ctrl_c_while_the_csms_is_busy_with_the_station_call_exits_promptly() -> None:
    entered, release = threading.Event(), threading.Event()
    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT)

    @csms.on(v16.BootNotificationRequest)
    def boot(station: Any, request: Any) -> Any:
        entered.set()
        release.wait(WAIT)  # the answer is not coming before the station gives up
        return v16.BootNotificationResponse(current_time=datetime.now(timezone.utc), interval=300,
                                            status="Accepted")

    csms.start("127.0.0.1", 0)
    station = cli_process("station", f"ws://127.0.0.1:{csms.port}/ocpp", "--id", "IMPATIENT")
    try:
        assert entered.wait(WAIT)
        started = time.monotonic()
        assert station.interrupt() == 130
        assert time.monotonic() - started < 2.0, station.text  # at once, not after close_timeout
    finally:
        station.kill()
        release.set()
        csms.stop()
    assert "Traceback" not in station.text and "KeyboardInterrupt" not in station.text
def test_version_option_prints_the_package_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ocpp-sync {ocpp_sync.__version__}\n"
