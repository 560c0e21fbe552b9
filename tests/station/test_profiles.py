"""The profile store's acceptance and replacement rules, version by version, without sockets."""
from __future__ import annotations

import datetime

import pytest

from ocpp_sync.station.profiles import ProfileStore
from ocpp_sync.station.schedule import EXTERNAL, MAX, TX, TX_DEFAULT, Period, Profile, Schedule, Transaction

T0 = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)


def profile(pid: int, purpose: str = TX_DEFAULT, *, level: int = 0, evse: int = 1, kind: str = "Absolute",
            periods: tuple[tuple[int, float], ...] = ((0, 16.0),), unit: str = "A", tx: str | None = None,
            start: datetime.datetime | None = T0, valid_from: datetime.datetime | None = None,
            valid_to: datetime.datetime | None = None) -> Profile:
    return Profile(id=pid, stack_level=level, purpose=purpose, kind=kind, evse_id=evse, transaction_id=tx,
                   valid_from=valid_from, valid_to=valid_to,
                   schedule=Schedule(unit, tuple(Period(s, lim) for s, lim in periods),
                                     start_schedule=None if kind == "Relative" else start))


RUNNING = {1: Transaction("7", 1, T0)}


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_what_every_version_refuses(version: str) -> None:
    store = ProfileStore(version, evse_count=2, max_stack_level=3, max_periods=2, rate_units=("A",))
    assert store.install(profile(1, MAX, evse=1)).reason == "InvalidProfile"
    assert store.install(profile(2, evse=3)).reason == "UnknownEvse"
    assert store.install(profile(3, level=4)).reason == "InvalidStackLevel"
    assert store.install(profile(4, unit="W")).reason == "InvalidSchedule"
    assert store.install(profile(5, periods=((0, 1), (10, 2), (20, 3)))).reason == "InvalidSchedule"
    assert store.install(profile(6, periods=((5, 1),))).reason == "InvalidSchedule"
    assert store.install(profile(7, periods=((0, 1), (0, 2)))).reason == "InvalidSchedule"
    assert store.install(profile(8, TX, evse=2)).reason == "TxNotFound"
    assert store.install(profile(9, TX, evse=1, tx="8"), transactions=RUNNING).reason == "TxNotFound"
    assert store.install(profile(10, TX, evse=0), transactions=RUNNING).reason == "InvalidProfile"
    assert store.install(profile(11, valid_from=T0, valid_to=T0)).reason == "InvalidValidity"
    assert store.install(profile(12, kind="Recurring")).reason == "InvalidSchedule"
    assert store.install(profile(13, EXTERNAL, evse=0)).reason == "InvalidProfile"
    assert store.entries() == []


def test_1_6_replaces_by_id_and_by_stack_level_and_purpose_on_the_connector() -> None:
    store = ProfileStore("1.6", evse_count=2)
    assert store.install(profile(1)).accepted
    assert store.install(profile(1, level=2)).accepted  # same id, anything else
    assert [p.stack_level for p in store.profiles()] == [2]
    assert store.install(profile(5, level=2)).accepted  # same level and purpose, same connector
    assert [p.id for p in store.profiles()] == [5]
    assert store.install(profile(6, level=2, evse=2)).accepted  # another connector: both stay
    assert [p.id for p in store.profiles()] == [5, 6]


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_2_x_replaces_by_id_only_and_refuses_a_clash(version: str) -> None:
    store = ProfileStore(version, evse_count=2)
    assert store.install(profile(1, valid_to=T0 + HOUR)).accepted
    assert store.install(profile(5, valid_to=T0 + HOUR)).reason == "DuplicateProfile"
    # the same level and purpose at another time is no clash
    assert store.install(profile(6, valid_from=T0 + HOUR)).accepted
    assert store.install(profile(1, level=1)).accepted  # replaced by its id
    assert [(p.id, p.stack_level) for p in store.profiles()] == [(1, 1), (6, 0)]


def test_2_x_needs_start_schedule_for_absolute_and_none_for_relative() -> None:
    store = ProfileStore("2.0.1")
    assert store.install(profile(1, start=None)).reason == "InvalidSchedule"
    relative_with_start = Profile(id=2, stack_level=0, purpose=TX_DEFAULT, kind="Relative", evse_id=1,
                                  schedule=Schedule("A", (Period(0, 6),), start_schedule=T0))
    assert store.install(relative_with_start).reason == "InvalidSchedule"
    # 1.6 lets an Absolute schedule without a start run from the start of charging
    assert ProfileStore("1.6").install(profile(1, start=None)).accepted


def test_a_tx_profile_is_bound_to_the_running_transaction_and_goes_with_it() -> None:
    store = ProfileStore("1.6")
    assert store.install(profile(1, TX), transactions=RUNNING).accepted
    assert store.profiles()[0].transaction_id == "7"
    assert ProfileStore("2.0.1").install(profile(1, TX), transactions=RUNNING).reason == "TxNotFound"
    assert store.end_transaction("7") == [1] and store.profiles() == []


def test_the_store_holds_at_most_max_profiles_but_a_replacement_fits() -> None:
    store = ProfileStore("1.6", max_profiles=1)
    assert store.install(profile(1)).accepted
    assert store.install(profile(2, level=1)).reason == "TooManyProfiles"
    assert store.install(profile(1, level=1)).accepted


def test_clear_by_id_or_by_criteria_and_externals_stay() -> None:
    store = ProfileStore("2.0.1", evse_count=2)
    store.install(profile(1, level=0))
    store.install(profile(2, level=1))
    store.install(profile(3, level=0, evse=2))
    store.install(profile(4, MAX, evse=0))
    store.set_external(profile(9, MAX, evse=0), source="EMS")
    assert store.clear(id=42) == []
    assert store.clear(id=2) == [2]
    assert store.clear(evse_id=2) == [3]
    assert store.clear(purpose=MAX) == [4]
    assert store.clear() == [1]
    assert [(e.profile.id, e.profile.purpose, e.source) for e in store.entries()] == [(9, EXTERNAL, "EMS")]
    assert [e.profile.id for e in store.find(sources=["EMS"])] == [9]
    assert store.find(sources=["CSO"]) == []
