"""Station simulator scenarios and connectors, against our CSMS on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.sim import (
    CentralSystem,
    Exchange,
    ScenarioError,
    StationSimulator,
    StepResult,
    load_scenario,
    parse_scenario,
    run_scenario,
)

WAIT = 20.0
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


class Seen:
    """Requests as the CSMS reported them, waitable."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.items: list[Exchange] = []

    def __call__(self, exchange: Exchange) -> None:
        with self.changed:
            self.items.append(exchange)
            self.changed.notify_all()

    def requests(self) -> list[Exchange]:
        with self.changed:
            return [e for e in self.items if e.kind == "request" and e.sender == "station"]

    def wait_until(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, WAIT), [e.action for e in self.items]


@pytest.fixture(params=["1.6", "2.0.1"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def csms(version: str) -> Iterator[tuple[Any, CentralSystem, Seen]]:
    seen = Seen()
    server = ocpp_sync.CSMS(versions=(version,), timeout=WAIT)
    central = CentralSystem(report=seen)
    central.install(server)
    server.start("127.0.0.1", 0)
    try:
        yield server, central, seen
    finally:
        server.stop()


def _wire(exchange: Exchange) -> str:
    """A request as the CSMS saw it: action plus what tells the steps apart."""
    p = exchange.payload
    if exchange.action == "StatusNotification":
        connector = p.get("connectorId") if "status" in p else p.get("evseId")
        return f"Status:{connector}:{p.get('status') or p.get('connectorStatus')}"
    if exchange.action == "TransactionEvent":
        return f"Tx:{p['eventType']}"
    return exchange.action


def test_example_scenario_reaches_the_csms_in_order(
        version: str, csms: tuple[Any, CentralSystem, Seen]) -> None:
    server, central, seen = csms
    name = "scenario_v16.json" if version == "1.6" else "scenario_v201.json"
    done = subprocess.run(
        [sys.executable, "-m", "ocpp_sync.cli", "station", f"ws://127.0.0.1:{server.port}/ocpp",
         "--id", "SCRIPTED", "--version", version, "--connectors", "2",
         "--scenario", str(EXAMPLES / name)],
        capture_output=True, text=True, timeout=60, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("[ 1/18] boot") and " ok " in line for line in lines), done.stdout
    assert any(line.startswith("[18/18] status") for line in lines), done.stdout
    assert "passed: 18 steps" in lines[-1]

    if version == "1.6":
        busy, finishing = "Preparing", "Finishing"
        start, meter, stop = "StartTransaction", "MeterValues", "StopTransaction"
        charging = "Charging"
    else:
        busy = finishing = charging = "Occupied"
        start, meter, stop = "Tx:Started", "Tx:Updated", "Tx:Ended"
    assert [_wire(e) for e in seen.requests()] == [
        "BootNotification", "Status:1:Available", "Status:2:Available", "Heartbeat",
        f"Status:1:{busy}", "Authorize", start, f"Status:1:{charging}", meter, meter, meter,
        "Authorize", start, meter, stop, f"Status:1:{finishing}", stop,
        "Status:1:Available", "Status:2:Available"]
    records = [t for (sid, _), t in central.transactions.items() if sid == "SCRIPTED"]
    tags = sorted(t["id_tag"] for t in records)
    assert tags == ["T1", "T2"]
    energy = {t["id_tag"]: t["meter_stop"] for t in records}
    assert energy["T1"] > energy["T2"] > 0  # each connector meters its own energy


def _simulator(server: Any, version: str, station_id: str, connectors: int = 1) -> StationSimulator:
    sim = StationSimulator(f"ws://127.0.0.1:{server.port}", station_id, version, timeout=WAIT,
                           connectors=connectors)
    sim.connect()
    return sim


class Progress:
    """Step results as the scenario reports them, waitable."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.results: list[StepResult] = []
        self.outcome: list[bool] = []

    def __call__(self, result: StepResult) -> None:
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait_for_steps(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.results) >= count, WAIT), self.results


def _play(sim: StationSimulator, steps: list[dict[str, Any]]) -> tuple[threading.Thread, Progress]:
    progress = Progress()
    runner = threading.Thread(
        target=lambda: progress.outcome.append(run_scenario(sim, parse_scenario(steps), progress)),
        name="test-scenario", daemon=True)
    runner.start()
    return runner, progress


def test_expect_step_is_satisfied_by_a_remote_stop(
        version: str, csms: tuple[Any, CentralSystem, Seen]) -> None:
    server, central, seen = csms
    sim = _simulator(server, version, "EXPECTING")
    try:
        runner, progress = _play(sim, [
            {"boot": {}}, {"start": {"connector": 1, "id_tag": "T1"}},
            {"expect": {"action": "RemoteStopTransaction", "timeout": WAIT}},
            {"status": {"connector": 1, "status": "Available"}}])
        station = server.wait_for_station("EXPECTING", timeout=WAIT)
        progress.wait_for_steps(2)
        transaction_id = sim.connector(1).transaction_id
        assert transaction_id is not None
        stop = (v16.RemoteStopTransactionRequest(transaction_id=transaction_id) if version == "1.6"
                else v201.RequestStopTransactionRequest(transaction_id=transaction_id))
        assert station.send(stop).status == "Accepted"
        runner.join(WAIT)
        assert progress.outcome == [True], progress.results
    finally:
        sim.close()
    assert "received" in progress.results[2].result
    assert sim.connector(1).transaction_id is None
    actions = [_wire(e) for e in seen.requests()]
    ended = "StopTransaction" if version == "1.6" else "Tx:Ended"
    assert actions[-3:] == [ended, "Status:1:Available", "Status:1:Available"]
    (record,) = [t for (sid, _), t in central.transactions.items() if sid == "EXPECTING"]
    assert record["reason"] == "Remote"


def test_expect_step_fails_when_the_csms_stays_silent(
        version: str, csms: tuple[Any, CentralSystem, Seen]) -> None:
    server, _, seen = csms
    sim = _simulator(server, version, "WAITING")
    try:
        runner, progress = _play(sim, [
            {"boot": {}}, {"expect": {"action": "Reset", "timeout": 0.3}}, {"heartbeat": {}}])
        runner.join(WAIT)
    finally:
        sim.close()
    assert progress.outcome == [False]
    assert [r.ok for r in progress.results] == [True, False]
    assert "TimeoutError" in progress.results[1].result
    assert [e.action for e in seen.requests()] == ["BootNotification"]


@pytest.mark.parametrize("content, message", [
    ('[{"start": {"connector": 2}}]', "connector 2, but the station has 1"),
    ('[{"boot": {}}, {"strat": {}}]', "step 2: unknown step 'strat'"),
    ('[{"boot"', "not valid JSON"),
    ('{"boot": {}}', "non-empty list of steps"),
    ('[{"meter": {"samples": "three"}}]', "samples must be int"),
    ('[{"expect": {"timeout": 3}}]', "'action' is required"),
    ('[{"stop": {"connector": 1, "why": "x"}}]', "unknown argument 'why'"),
])
def test_a_bad_scenario_file_exits_2_with_a_clear_message(
        tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(content)
    # The file is checked before connecting: nothing listens on port 9.
    done = subprocess.run(
        [sys.executable, "-m", "ocpp_sync.cli", "station", "ws://127.0.0.1:9/", "--id", "BAD",
         "--scenario", str(path)], capture_output=True, text=True, timeout=60, env=ENV)
    assert done.returncode == 2, done.stderr
    assert "bad scenario:" in done.stderr and message in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_yaml_scenario_needs_pyyaml(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("- boot: {}\n- heartbeat: {}\n- stop: {connector: 1, reason: Local}\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ScenarioError, match="need PyYAML"):
            load_scenario(str(path))
    else:
        assert [s.name for s in load_scenario(str(path))] == ["boot", "heartbeat", "stop"]


def test_a_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(str(tmp_path / "absent.json"))
    assert [s.name for s in parse_scenario(json.loads('{"steps": ["boot", {"heartbeat": null}]}'))] \
        == ["boot", "heartbeat"]


def test_connectors_are_independent(version: str, csms: tuple[Any, CentralSystem, Seen]) -> None:
    server, central, seen = csms
    m = v16 if version == "1.6" else v201
    sim = _simulator(server, version, "TWIN", connectors=2)
    stop_flag = threading.Event()
    try:
        sim.boot()
        first = sim.start_transaction("T1", connector=1)
        second = sim.start_transaction("T2", connector=2)
        sim.status("Charging", connector=1)
        sim.status("Charging", connector=2)
        assert first != second
        station = server.wait_for_station("TWIN", timeout=WAIT)
        runner = threading.Thread(target=_obey, args=(sim, stop_flag), name="test-obey",
                                  daemon=True)
        runner.start()

        if version == "1.6":
            stop_second = m.RemoteStopTransactionRequest(transaction_id=second)
            inoperative = m.ChangeAvailabilityRequest(connector_id=2, type="Inoperative")
            start_on_2 = m.RemoteStartTransactionRequest(id_tag="T3", connector_id=2)
            start_any = m.RemoteStartTransactionRequest(id_tag="T3")
        else:
            stop_second = m.RequestStopTransactionRequest(transaction_id=second)
            inoperative = m.ChangeAvailabilityRequest(operational_status="Inoperative",
                                                      evse=m.EVSEType(id=2))
            token = m.IdTokenType(id_token="T3", type="Central")
            start_on_2 = m.RequestStartTransactionRequest(id_token=token, remote_start_id=1,
                                                          evse_id=2)
            start_any = m.RequestStartTransactionRequest(id_token=token, remote_start_id=2)
        # Connector 2 is busy: no availability change yet, and no second transaction there.
        assert station.send(inoperative).status == "Scheduled"
        assert station.send(stop_second).status == "Accepted"
        seen.wait_until(lambda: _wire(seen.requests()[-1]) == "Status:2:Available")
        assert sim.connector(2).transaction_id is None
        assert sim.connector(1).transaction_id == first
        assert sim.connector(1).status == "Charging"

        assert station.send(inoperative).status == "Accepted"
        seen.wait_until(lambda: _wire(seen.requests()[-1]) == "Status:2:Unavailable")
        assert sim.connector(1).status == "Charging"
        assert station.send(start_on_2).status == "Rejected"
        assert station.send(start_any).status == "Rejected"  # 1 is charging, 2 is unavailable
    finally:
        stop_flag.set()
        sim.close()
    runner.join(WAIT)
    assert not runner.is_alive()
    records = {t["id_tag"]: t for (sid, _), t in central.transactions.items() if sid == "TWIN"}
    assert records["T2"]["reason"] == "Remote"
    assert "reason" not in records["T1"]


def _obey(sim: StationSimulator, stop: threading.Event) -> None:
    while not stop.is_set():
        command = sim.wait_for_command(0.1)
        if command is not None:
            sim.carry_out(command, charge=False)


def test_settings_are_one_store(version: str, csms: tuple[Any, CentralSystem, Seen]) -> None:
    server, _, _ = csms
    sim = _simulator(server, version, "CONFIG", connectors=3)
    try:
        sim.boot()
        station = server.wait_for_station("CONFIG", timeout=WAIT)
        if version == "1.6":
            assert station.send(v16.ChangeConfigurationRequest(
                key="HeartbeatInterval", value="42")).status == "Accepted"
            got = station.send(v16.GetConfigurationRequest(key=["HeartbeatInterval",
                                                                "NumberOfConnectors"]))
            assert [(k.key, k.value) for k in got.configuration_key] == [
                ("HeartbeatInterval", "42"), ("NumberOfConnectors", "3")]
        else:
            def item(component: str, variable: str) -> Any:
                return {"component": v201.ComponentType(name=component),
                        "variable": v201.VariableType(name=variable)}
            set_result = station.send(v201.SetVariablesRequest(set_variable_data=[
                v201.SetVariableDataType(attribute_value="42",
                                         **item("OCPPCommCtrlr", "HeartbeatInterval"))]))
            assert set_result.set_variable_result[0].attribute_status == "Accepted"
            got = station.send(v201.GetVariablesRequest(get_variable_data=[
                v201.GetVariableDataType(**item("OCPPCommCtrlr", "HeartbeatInterval")),
                v201.GetVariableDataType(**item("EVSE", "Count"))]))
            assert [r.attribute_value for r in got.get_variable_result] == ["42", "3"]
    finally:
        sim.close()
    assert sim.setting("HeartbeatInterval") == "42"


def test_trigger_and_unlock_act_on_the_connector_named(
        version: str, csms: tuple[Any, CentralSystem, Seen]) -> None:
    server, central, seen = csms
    m = v16 if version == "1.6" else v201
    sim = _simulator(server, version, "TRIGGERED", connectors=2)
    stop_flag = threading.Event()
    runner = threading.Thread(target=_obey, args=(sim, stop_flag), name="test-obey", daemon=True)
    try:
        sim.boot()
        sim.status("Faulted", connector=2)
        sim.start_transaction("T1", connector=1)
        sim.status("Charging", connector=1)
        station = server.wait_for_station("TRIGGERED", timeout=WAIT)
        runner.start()
        if version == "1.6":
            trigger = m.TriggerMessageRequest(requested_message="StatusNotification", connector_id=2)
            unlock = m.UnlockConnectorRequest(connector_id=1)
            unknown = m.UnlockConnectorRequest(connector_id=3)
        else:
            trigger = m.TriggerMessageRequest(requested_message="StatusNotification",
                                              evse=m.EVSEType(id=2))
            unlock = m.UnlockConnectorRequest(evse_id=1, connector_id=1)
            unknown = m.UnlockConnectorRequest(evse_id=3, connector_id=1)
        assert station.send(trigger).status == "Accepted"
        seen.wait_until(lambda: sum(_wire(e) == "Status:2:Faulted" for e in seen.requests()) == 2)
        assert station.send(unknown).status in ("NotSupported", "UnknownConnector")
        assert station.send(unlock).status == "Unlocked"
        seen.wait_until(lambda: _wire(seen.requests()[-1]) == "Status:1:Available")
        assert sim.connector(1).transaction_id is None
    finally:
        stop_flag.set()
        sim.close()
    runner.join(WAIT)
    assert sim.connector(2).status == "Faulted"
    (record,) = [t for (sid, _), t in central.transactions.items() if sid == "TRIGGERED"]
    assert record["reason"] == ("UnlockCommand" if version == "1.6" else "Other")
