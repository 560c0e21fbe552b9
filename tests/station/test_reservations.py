"""The reservation rules, version by version, without sockets; the time is passed in."""
from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_sync.station.reservations import (
    ANY_EVSE,
    AVAILABLE,
    FAULTED,
    OCCUPIED,
    UNAVAILABLE,
    Reservation,
    ReservationStore,
)
from ocpp_sync.station.tokens import IdToken

T0 = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)
A, B, GROUP = IdToken("A"), IdToken("B"), IdToken("G")


def reservation(rid: int, evse: int, token: IdToken = A, *, expiry: datetime.datetime = T0 + HOUR,
                group: IdToken | None = None) -> Reservation:
    return Reservation(rid, evse, token, expiry, group)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_an_evse_is_reserved_for_its_token_and_group(version: str) -> None:
    store = ReservationStore(version, evse_count=2)
    assert store.reserve(reservation(1, 1, group=GROUP), T0) == "Accepted"
    assert store.reserved(1) == reservation(1, 1, group=GROUP)
    assert store.may_charge(1, A)
    assert store.may_charge(1, B, group=GROUP)
    assert not store.may_charge(1, B)
    assert not store.may_charge(1, B, group=IdToken("other"))
    assert store.may_charge(2, B)
    assert store.use(1, B) is None
    assert store.use(1, B, group=GROUP) == reservation(1, 1, group=GROUP)
    assert store.reservations() == [] and store.may_charge(1, B)


@pytest.mark.parametrize(("state", "status"), [(FAULTED, "Faulted"), (UNAVAILABLE, "Unavailable"),
                                               (OCCUPIED, "Occupied")])
def test_the_evse_state_gives_the_refusal(state: str, status: str) -> None:
    store = ReservationStore("1.6", evse_count=1)
    store.set_state(1, state)
    assert store.reserve(reservation(1, 1), T0) == status
    assert store.reservations() == []


def test_what_every_reservation_refuses() -> None:
    store = ReservationStore("2.0.1", evse_count=2)
    assert store.reserve(reservation(1, 1), T0) == "Accepted"
    assert store.reserve(reservation(2, 1, B), T0) == "Occupied"  # held by another reservation
    assert store.reserve(reservation(3, 3), T0) == "Rejected"  # no such EVSE
    assert store.reserve(reservation(4, 2, expiry=T0), T0) == "Rejected"  # already expired
    assert ReservationStore("2.0.1", enabled=False).reserve(reservation(5, 1), T0) == "Rejected"
    assert ReservationStore("1.6", any_evse=False).reserve(reservation(6, ANY_EVSE), T0) == "Rejected"
    with pytest.raises(ValueError, match="no EVSE 3"):
        store.set_state(3, FAULTED)


def test_a_reservation_with_a_known_id_replaces_it() -> None:
    store = ReservationStore("1.6", evse_count=2)
    assert store.reserve(reservation(1, 1), T0) == "Accepted"
    assert store.reserve(reservation(1, 1, B), T0) == "Accepted"  # its own EVSE is not "held by another"
    assert store.reserve(reservation(1, 2, B), T0) == "Accepted"
    assert store.reservations() == [reservation(1, 2, B)]


def test_cancel_and_expiry_end_a_reservation() -> None:
    store = ReservationStore("2.0.1", evse_count=2)
    store.reserve(reservation(1, 1), T0)
    store.reserve(reservation(2, 2, expiry=T0 + 2 * HOUR), T0)
    assert store.cancel(1) and not store.cancel(1)
    assert store.expire(T0 + HOUR) == []
    assert store.expire(T0 + 2 * HOUR) == [reservation(2, 2, expiry=T0 + 2 * HOUR)]
    assert store.reservations() == []


def test_any_evse_reservations_keep_one_free_evse_each() -> None:
    store = ReservationStore("1.6", evse_count=2)
    assert store.reserve(reservation(1, ANY_EVSE), T0) == "Accepted"
    assert store.may_charge(1, B) and store.may_charge(2, B)  # one EVSE stays free for A
    assert store.reserve(reservation(2, ANY_EVSE, B), T0) == "Accepted"
    assert store.reserve(reservation(3, ANY_EVSE, IdToken("C")), T0) == "Occupied"
    assert not store.may_charge(1, IdToken("C"))
    assert store.may_charge(1, B)
    assert store.use(1, B) == reservation(2, ANY_EVSE, B)
    store.set_state(1, OCCUPIED)
    assert not store.may_charge(2, IdToken("C")) and store.may_charge(2, A)
    # the last free EVSE is kept for A: it cannot be reserved for C
    assert store.reserve(reservation(4, 2, IdToken("C")), T0) == "Occupied"
    store.set_state(1, AVAILABLE)
    assert store.reserve(reservation(4, 2, IdToken("C")), T0) == "Accepted"
    assert store.reserve(reservation(5, ANY_EVSE, IdToken("D")), T0) == "Occupied"


@pytest.mark.parametrize(("states", "status"), [
    ((FAULTED, FAULTED), "Faulted"), ((FAULTED, UNAVAILABLE), "Unavailable"),
    ((OCCUPIED, UNAVAILABLE), "Occupied"), ((OCCUPIED, FAULTED), "Occupied")])
def test_an_any_evse_reservation_without_a_free_evse(states: tuple[str, str], status: str) -> None:
    store = ReservationStore("1.6", evse_count=2)
    for evse, state in enumerate(states, start=1):
        store.set_state(evse, state)
    assert store.reserve(reservation(1, ANY_EVSE), T0) == status


actions = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.integers(1, 5), st.integers(0, 3), st.sampled_from("ABCD")),
    st.tuples(st.just("state"), st.integers(1, 3), st.sampled_from([AVAILABLE, OCCUPIED, FAULTED])),
    st.tuples(st.just("start"), st.integers(1, 3), st.sampled_from("ABCD"))), max_size=20)


@settings(max_examples=80, deadline=None)
@given(steps=actions)
def test_starting_only_where_allowed_keeps_a_free_evse_for_each_any_reservation(steps: list[Any]) -> None:
    """Whatever is reserved and started, if starts happen only where :meth:`may_charge` allows,
    every "any EVSE" reservation keeps an EVSE it can use."""
    store = ReservationStore("1.6", evse_count=3)
    for step in steps:
        if step[0] == "reserve":
            store.reserve(reservation(step[1], step[2], IdToken(step[3])), T0)
        elif step[0] == "state" and step[2] != OCCUPIED:
            store.set_state(step[1], step[2])
        elif step[0] == "start" and store.state(step[1]) == AVAILABLE and store.may_charge(step[1], IdToken(step[2])):
            store.use(step[1], IdToken(step[2]))
            store.set_state(step[1], OCCUPIED)
        held = {r.evse_id for r in store.reservations()}
        free = [e for e in (1, 2, 3) if store.state(e) == AVAILABLE and e not in held]
        anywhere = [r for r in store.reservations() if r.evse_id == ANY_EVSE]
        if FAULTED not in {store.state(e) for e in (1, 2, 3)}:  # a fault may take the kept EVSE
            assert len(free) >= len(anywhere)
