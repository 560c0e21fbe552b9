"""Every station-under-test case passes against our simulator (and a ChargePoint for the
variables it lacks), and fails naming the step and field against a station with a defect."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from targets import FAST, SHORT

from ocpp_sync.conformance import Config, Report, ScriptedPrompt, StationUnderTest, run
from ocpp_sync.conformance.case import FAILED, PASSED
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.sim import StationSimulator

STATION_ID = "SUT_CP_1"


class SimulatedStation:
    """Our simulator as the station under test: started when the kit listens, rebooted on request.

    ``tweak(sim)`` seeds a defect (or adds what the simulator lacks) on every new simulator.
    """

    def __init__(self, version: str, connectors: int = 1,
                 tweak: Callable[[StationSimulator], Any] | None = None) -> None:
        self.version = version
        self.connectors = connectors
        self.tweak = tweak
        self.port: int | None = None
        self.sims: list[StationSimulator] = []
        self.driving = True

    def start(self, port: int | None) -> None:
        self.port = port
        self.boot()

    def boot(self) -> None:
        """Power on: connect, boot, report every connector (as a real charger does by itself)."""
        for old in self.sims:
            old.close(0.0)
        sim = StationSimulator(f"ws://127.0.0.1:{self.port}/ocpp", STATION_ID, self.version,
                               connectors=self.connectors, timeout=5.0,
                               id_tag=FAST.valid_id_token)
        if self.tweak is not None:
            self.tweak(sim)
        self.sims.append(sim)
        sim.connect()
        sim.boot()
        for number in sim.connectors:
            sim.status("Available", number)

    def carry_out_reset(self) -> None:
        """What the simulator's owner does with a reset it accepted: reboot in place."""
        sim = self.sims[-1]
        command = sim.wait_for_command(timeout=5.0)
        if command is not None:
            sim.carry_out(command)

    def close(self) -> None:
        for sim in self.sims:
            sim.close(0.0)


@pytest.fixture
def station() -> Iterator[Callable[..., SimulatedStation]]:
    made: list[SimulatedStation] = []

    def make(version: str = "2.0.1", **options: Any) -> SimulatedStation:
        made.append(SimulatedStation(version, **options))
        return made[-1]
    yield make
    for one in made:
        one.close()


class Driver:
    """The person at the simulator: plugs in and presents the card, in either order."""

    def __init__(self, sut: SimulatedStation) -> None:
        self.sut = sut
        self.plugged = self.authorized = False

    def plug_in(self) -> None:
        self.sut.sims[-1].status("Preparing")
        self.plugged = True
        self._start_when_ready()

    def present_card(self) -> None:
        self.authorized = self.sut.sims[-1].authorize()
        self._start_when_ready()

    def _start_when_ready(self) -> None:
        if self.plugged and self.authorized:
            self.sut.sims[-1].start_transaction()
            self.sut.sims[-1].status("Charging")


def play(sut: SimulatedStation, cases: str, config: Config = FAST) -> Report:
    target = StationUnderTest(STATION_ID, sut.version, host="127.0.0.1", port=0)
    driver = Driver(sut)
    prompt = ScriptedPrompt({"reboot": sut.boot, "plug_in": driver.plug_in,
                             "present_card": driver.present_card})
    return run(target, cases, config=config, prompt=prompt, on_ready=sut.start)


def offline_threshold(sim: StationSimulator) -> None:
    """The one variable of TC_B_06/09 that the simulator does not keep: a ChargePoint handler."""
    m = version_module("2.0.1")
    values = {"OfflineThreshold": "0"}

    @sim.cp.on(m.SetVariablesRequest)
    def set_variables(request: Any) -> Any:
        results = []
        for item in request.set_variable_data:
            values[item.variable.name] = item.attribute_value
            results.append(m.SetVariableResultType(attribute_status="Accepted",
                                                   component=item.component,
                                                   variable=item.variable))
        return m.SetVariablesResponse(set_variable_result=results)

    @sim.cp.on(m.GetVariablesRequest)
    def get_variables(request: Any) -> Any:
        return m.GetVariablesResponse(get_variable_result=[m.GetVariableResultType(
            attribute_status="Accepted", attribute_type="Actual",
            attribute_value=values.get(item.variable.name), component=item.component,
            variable=item.variable) for item in request.get_variable_data])


@pytest.mark.usefixtures("no_leftover_threads")
def test_the_boot_cases_pass_against_our_simulator(station: Callable[..., SimulatedStation]) -> None:
    sut = station(connectors=2)
    report = play(sut, "TC_B_01_CS", FAST.__class__(**{**FAST.__dict__, "connectors": 2}))
    assert report.verdict("TC_B_01_CS").outcome == PASSED, report.text()


def test_the_16_boot_case_passes_against_our_simulator(station: Callable[..., SimulatedStation]) -> None:
    report = play(station("1.6"), "TC_001_CS")
    assert report.verdict("TC_001_CS").outcome == PASSED, report.text()


def test_the_variables_cases_pass_against_a_station_that_keeps_the_variable(
        station: Callable[..., SimulatedStation]) -> None:
    report = play(station(tweak=offline_threshold), "TC_B_06_CS,TC_B_09_CS")
    assert [v.outcome for v in report.verdicts] == [PASSED, PASSED], report.text()


def test_the_reset_case_passes_against_our_simulator(station: Callable[..., SimulatedStation]) -> None:
    m = version_module("2.0.1")
    sut = station()
    sut.tweak = lambda sim: sim.cp.after(m.ResetRequest)(
        lambda request, response: threading.Thread(target=sut.carry_out_reset,
                                                   name="test-sim-reset", daemon=True).start())
    report = play(sut, "TC_B_20_CS")
    assert report.verdict("TC_B_20_CS").outcome == PASSED, report.text()


def test_the_variables_cases_fail_against_a_station_without_the_variable_naming_the_field(
        station: Callable[..., SimulatedStation]) -> None:
    m = version_module("2.0.1")

    def unknown(request: Any) -> Any:
        return m.SetVariablesResponse(set_variable_result=[m.SetVariableResultType(
            attribute_status="UnknownVariable", component=item.component, variable=item.variable)
            for item in request.set_variable_data])

    sut = station(tweak=lambda sim: sim.cp.on(m.SetVariablesRequest)(unknown))
    verdict = play(sut, "TC_B_09_CS").verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.expected, verdict.got) == \
        (FAILED, "set variables", "$.setVariableResult[0].attributeStatus", "Accepted",
         "UnknownVariable")
    assert verdict.frame is not None and verdict.frame["action"] == "SetVariables"
    assert verdict.frame["type"] == "CALLRESULT"


def test_a_station_that_skips_the_status_after_boot_fails_the_boot_case(
        station: Callable[..., SimulatedStation]) -> None:
    sut = station(tweak=lambda sim: setattr(sim, "status", lambda *args, **kwargs: None))
    verdict = play(sut, "TC_B_01_CS", SHORT).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.expected) == (FAILED, "status",
                                                                 "a StatusNotification CALL")


def test_a_station_that_rejects_the_reset_fails_the_reset_case(
        station: Callable[..., SimulatedStation]) -> None:
    m = version_module("2.0.1")
    sut = station(tweak=lambda sim: sim.cp.on(m.ResetRequest)(
        lambda request: m.ResetResponse(status="Rejected")))
    verdict = play(sut, "TC_B_20_CS", SHORT).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == (
        FAILED, "reset", "$.status", "Rejected")


def test_a_station_that_never_connects_fails_every_case_at_its_first_step() -> None:
    target = StationUnderTest(STATION_ID, "2.0.1", host="127.0.0.1", port=0)
    config = SHORT.__class__(**{**SHORT.__dict__, "connect_timeout": 0.3})
    verdict = run(target, "TC_B_09_CS", config=config).verdicts[0]
    assert (verdict.outcome, verdict.step) == (FAILED, "set variables")
    assert "did not connect" in verdict.message


def test_a_station_that_reports_another_value_fails_the_get_variables_case(
        station: Callable[..., SimulatedStation]) -> None:
    m = version_module("2.0.1")

    def forgetful(sim: StationSimulator) -> None:
        offline_threshold(sim)
        sim.cp.on(m.GetVariablesRequest)(lambda request: m.GetVariablesResponse(
            get_variable_result=[m.GetVariableResultType(
                attribute_status="Accepted", attribute_value="0", component=item.component,
                variable=item.variable) for item in request.get_variable_data]))
    verdict = play(station(tweak=forgetful), "TC_B_06_CS").verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.expected, verdict.got) == \
        (FAILED, "get variables", "$.getVariableResult[0].attributeValue", "300", "0")


def test_a_16_station_that_skips_the_status_after_boot_fails_the_16_boot_case(
        station: Callable[..., SimulatedStation]) -> None:
    sut = station("1.6", tweak=lambda sim: setattr(sim, "status", lambda *args, **kwargs: None))
    verdict = play(sut, "TC_001_CS", SHORT).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.expected) == (FAILED, "status",
                                                                 "a StatusNotification CALL")


@pytest.mark.parametrize("case_id", ["TC_003_CS", "TC_004_1_CS"])
def test_the_16_charging_cases_pass_against_our_simulator(
        station: Callable[..., SimulatedStation], case_id: str) -> None:
    report = play(station("1.6"), case_id)
    assert report.verdict(case_id).outcome == PASSED, report.text()


def test_a_16_station_that_never_says_charging_fails_the_identification_case(
        station: Callable[..., SimulatedStation]) -> None:
    def quiet_when_charging(sim: StationSimulator) -> None:
        report_status = sim.status
        sim.status = lambda status, connector=1: None if status == "Charging" else \
            report_status(status, connector)   # type: ignore[method-assign]
    verdict = play(station("1.6", tweak=quiet_when_charging), "TC_004_1_CS", SHORT).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.expected) == (FAILED, "plug in",
                                                                 "a StatusNotification CALL")


def test_a_16_station_that_starts_for_another_tag_fails_the_plugin_case(
        station: Callable[..., SimulatedStation]) -> None:
    def other_tag(sim: StationSimulator) -> None:
        sim.id_tag = "SOMEONE-ELSE"
    verdict = play(station("1.6", tweak=other_tag), "TC_003_CS").verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == (
        FAILED, "authorize", "$.idTag", "SOMEONE-ELSE")


def _remote_stop(sut: SimulatedStation, finishing: bool) -> Callable[[StationSimulator], None]:
    """Carry out an accepted remote stop: the simulator's way (Available), or with Finishing."""
    m = version_module("1.6")

    def stop() -> None:
        sim = sut.sims[-1]
        command = sim.wait_for_command(timeout=5.0)
        if command is None:
            return
        if not finishing:
            sim.carry_out(command)
            return
        sim.stop_transaction("Remote")
        sim.status("Finishing")

    def tweak(sim: StationSimulator) -> None:
        sim.cp.after(m.RemoteStopTransactionRequest)(lambda request, response: threading.Thread(
            target=stop, name="test-sim-remote-stop", daemon=True).start())
    return tweak


def test_the_16_remote_stop_case_passes_against_a_station_that_reports_finishing(
        station: Callable[..., SimulatedStation]) -> None:
    sut = station("1.6")
    sut.tweak = _remote_stop(sut, finishing=True)
    report = play(sut, "TC_012_CS")
    assert report.verdict("TC_012_CS").outcome == PASSED, report.text()


def test_the_16_remote_stop_case_fails_against_the_simulator_that_skips_finishing(
        station: Callable[..., SimulatedStation]) -> None:
    sut = station("1.6")
    sut.tweak = _remote_stop(sut, finishing=False)
    verdict = play(sut, "TC_012_CS").verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.expected, verdict.got) == (
        FAILED, "stopped", "$.status", "Finishing", "Available")
