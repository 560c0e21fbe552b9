"""The local list and smart charging cases for a station under test (1.6 and 2.0.1): they pass
against a ChargePoint with the station stack attached, and fail naming the step and field
against a station with one seeded defect."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from targets import FAST
from test_station_under_test import SimulatedStation, play

from ocpp_sync.conformance import LOCAL_LIST_DISABLED, Report
from ocpp_sync.conformance.case import FAILED, INCONCLUSIVE, PASSED, select
from ocpp_sync.protocol.codec import from_payload
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.sim import StationSimulator
from ocpp_sync.station.authorization import Authorization
from ocpp_sync.station.locallist import ListVerdict, LocalList
from ocpp_sync.station.profiles import TX_DEFAULT, ProfileStore
from ocpp_sync.station.smart import SmartCharging

LISTS_201 = "TC_D_*"
SMART_201 = "TC_K_*"
LISTS_16 = "TC_042_*,TC_043_*"
SMART_16 = "TC_056_CS,TC_058_1_CS,TC_066_CS,TC_067_CS"


def stack(enabled: bool = True, defect: Callable[[StationSimulator], Any] | None = None
          ) -> Callable[[StationSimulator], None]:
    """Attach the station stack's local list and smart charging to each new simulator's
    ChargePoint (the simulator answers neither itself), then seed ``defect``."""
    def attach(sim: StationSimulator) -> None:
        Authorization(LocalList(sim.version, enabled=enabled)).attach(sim.cp)
        SmartCharging(ProfileStore(sim.version, evse_count=1)).attach(sim.cp)
        if defect is not None:
            defect(sim)
    return attach


@pytest.fixture
def station() -> Iterator[Callable[..., SimulatedStation]]:
    made: list[SimulatedStation] = []

    def make(version: str = "2.0.1", **options: Any) -> SimulatedStation:
        made.append(SimulatedStation(version, **options))
        return made[-1]
    yield make
    for one in made:
        one.close()


def _outcomes(report: Report) -> dict[str, str]:
    return {v.case_id: v.outcome for v in report.verdicts}


@pytest.mark.usefixtures("no_leftover_threads")
@pytest.mark.parametrize("version, cases, count", [
    ("2.0.1", f"{LISTS_201},{SMART_201}", 13), ("1.6", f"{LISTS_16},{SMART_16}", 9)])
def test_the_list_and_smart_cases_pass_against_the_station_stack(
        station: Callable[..., SimulatedStation], version: str, cases: str, count: int) -> None:
    report = play(station(version, tweak=stack()), cases)
    outcomes = _outcomes(report)
    assert len(outcomes) == count
    disabled_only = {"TC_042_1_CS", "TC_043_1_CS"}
    assert {k: v for k, v in outcomes.items() if k not in disabled_only} == \
        {k: PASSED for k in outcomes if k not in disabled_only}, report.text()
    assert all(outcomes[k] == INCONCLUSIVE for k in disabled_only & set(outcomes))


def test_the_not_supported_cases_pass_against_a_disabled_list_and_fail_against_an_enabled_one(
        station: Callable[..., SimulatedStation]) -> None:
    config = FAST.__class__(**{**FAST.__dict__, "provides": {LOCAL_LIST_DISABLED}})
    disabled = play(station("1.6", tweak=stack(enabled=False)), "TC_042_1_CS,TC_043_1_CS", config)
    assert set(_outcomes(disabled).values()) == {PASSED}, disabled.text()
    verdict = play(station("1.6", tweak=stack()), "TC_042_1_CS", config).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == (
        FAILED, "get version", "$.listVersion", 0)


def test_every_new_case_is_for_a_station_under_test() -> None:
    ids = [c.id for c in select(f"{LISTS_201},{SMART_201},{LISTS_16},{SMART_16}")]
    assert len(ids) == 22 and all(c.endswith("_CS") for c in ids)


# -- seeded defects ------------------------------------------------------------------------------

def _answer(action: str, payload: dict[str, Any]) -> Callable[[StationSimulator], None]:
    """A station that answers ``action`` with a fixed (wrong) payload."""
    def seed(sim: StationSimulator) -> None:
        m = version_module(sim.version)
        response = m.RESPONSES[action]
        request = m.REQUESTS[action]
        sim.cp.on(request)(lambda _request: from_payload(response, payload))
    return seed


def _takes_stale_differentials(sim: StationSimulator) -> None:
    """Accepts a Differential update whose version is not above the list's."""
    local_list = LocalList(sim.version)
    Authorization(local_list).attach(sim.cp)
    update = local_list.update

    def lenient(update_type: str, list_version: int, changes: Any) -> ListVerdict:
        verdict = update(update_type, list_version, changes)
        return ListVerdict("Accepted") if verdict.status == "VersionMismatch" else verdict
    local_list.update = lenient  # type: ignore[method-assign]


def _ignores_stack_levels(sim: StationSimulator) -> None:
    """Takes a new TxDefaultProfile in place of every other one, whatever its stack level."""
    m = version_module(sim.version)
    smart = SmartCharging(ProfileStore(sim.version, evse_count=1))
    smart.attach(sim.cp)

    def set_profile(request: Any) -> Any:
        smart.store.clear(purpose=TX_DEFAULT)
        return smart.on_set_charging_profile(request)
    sim.cp.on(m.SetChargingProfileRequest)(set_profile)


def _ignores_station_limit(sim: StationSimulator) -> None:
    """Accepts the station-wide limit but never stores it."""
    m = version_module(sim.version)
    smart = SmartCharging(ProfileStore(sim.version, evse_count=1))
    smart.attach(sim.cp)
    maximum = {"ChargePointMaxProfile", "ChargingStationMaxProfile"}

    def set_profile(request: Any) -> Any:
        wire = request.cs_charging_profiles if sim.version == "1.6" else request.charging_profile
        if str(wire.charging_profile_purpose) in maximum:
            return m.SetChargingProfileResponse(status="Accepted")
        return smart.on_set_charging_profile(request)
    sim.cp.on(m.SetChargingProfileRequest)(set_profile)


DEFECTS = [
    ("2.0.1", "version stuck at 0", _answer("GetLocalListVersion", {"versionNumber": 0}),
     "TC_D_01_CS", "get version", "GetLocalListVersion", "$.versionNumber", 1, 0),
    ("2.0.1", "refuses differentials", _answer("SendLocalList", {"status": "Failed"}),
     "TC_D_02_CS", "send full list", "SendLocalList", "$.status", "Accepted", "Failed"),
    ("2.0.1", "rejects the default profile", _answer("SetChargingProfile", {"status": "Rejected"}),
     "TC_K_01_CS", "set profile", "SetChargingProfile", "$.status", "Accepted", "Rejected"),
    ("2.0.1", "accepts a TxProfile without transaction",
     _answer("SetChargingProfile", {"status": "Accepted"}), "TC_K_02_CS", "set profile",
     "SetChargingProfile", "$.status", "Rejected", "Accepted"),
    ("2.0.1", "says every clear worked", _answer("ClearChargingProfile", {"status": "Accepted"}),
     "TC_K_08_CS", "clear unknown", "ClearChargingProfile", "$.status", "Unknown", "Accepted"),
    ("2.0.1", "ignores stack levels", _ignores_stack_levels, "TC_K_40_CS", "get composite",
     "GetCompositeSchedule", "$.schedule.chargingSchedulePeriod[1].limit", None, 32.0),
    ("2.0.1", "ignores the station limit", _ignores_station_limit, "TC_K_41_CS", "get composite",
     "GetCompositeSchedule", "$.schedule.chargingSchedulePeriod[2].limit", None, 16.0),
    ("1.6", "empty list keeps its version", _answer("GetLocalListVersion", {"listVersion": 1}),
     "TC_042_2_CS", "get version", "GetLocalListVersion", "$.listVersion", 0, 1),
    ("1.6", "takes a stale differential", _takes_stale_differentials, "TC_043_2_CS",
     "send stale differential", "SendLocalList", "$.status", "VersionMismatch", "Accepted"),
    ("1.6", "ignores the charge point limit", _ignores_station_limit, "TC_066_CS",
     "get composite", "GetCompositeSchedule",
     "$.chargingSchedule.chargingSchedulePeriod[2].limit", None, 16.0),
    ("1.6", "clears nothing by id", _answer("ClearChargingProfile", {"status": "Unknown"}),
     "TC_067_CS", "clear by id", "ClearChargingProfile", "$.status", "Accepted", "Unknown"),
]


@pytest.mark.parametrize("version, name, defect, case_id, step, action, path, expected, got",
                         DEFECTS, ids=[d[1] for d in DEFECTS])
def test_a_seeded_defect_fails_its_case_naming_step_frame_and_field(
        station: Callable[..., SimulatedStation], version: str, name: str,
        defect: Callable[[StationSimulator], Any], case_id: str, step: str, action: str,
        path: str, expected: Any, got: Any) -> None:
    report = play(station(version, tweak=stack(defect=defect)), case_id)
    verdict = report.verdict(case_id)
    assert (verdict.outcome, verdict.step, verdict.field) == (FAILED, step, path), report.text()
    assert verdict.frame is not None and verdict.frame["action"] == action
    assert verdict.frame["direction"] == "from the station under test"
    if expected is not None:
        assert verdict.expected == expected
    assert verdict.got == got
