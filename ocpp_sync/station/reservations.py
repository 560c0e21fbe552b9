"""Reservations: ReserveNow, CancelReservation, and a reserved EVSE refusing other identifiers.

The store is pure (the caller passes the time); :class:`Reservations` answers the
messages and reads :attr:`Reservations.clock`. The rules (1.6 section 5.13, 2.x use
cases H01-H04):

- a ReserveNow with the id of a reservation replaces it (2.x H01.FR.02);
- it is Rejected while reservations are disabled (2.x ReservationCtrlr Enabled,
  H01.FR.01), for an EVSE the station does not have, for an expiry already past, and
  for "any EVSE" (1.6 connector 0, 2.x no evseId) unless allowed (1.6
  ReserveConnectorZeroSupported, 2.x ReservationCtrlr NonEvseSpecific, H01.FR.18/19);
- on one EVSE: Faulted, Unavailable or Occupied after the EVSE's state (as the
  application sets it), Occupied as well when another reservation holds it or when
  it must stay free for the "any EVSE" reservations;
- for any EVSE: Accepted while more EVSEs are free (Available, not reserved) than
  "any EVSE" reservations are held, so one stays free for each; otherwise Faulted when
  all are faulted, Unavailable when all are faulted or unavailable, else Occupied;
- a reserved EVSE takes only the reservation's identifier, or one of its group (1.6
  parentIdTag, 2.x groupIdToken); a free EVSE takes others only while enough free EVSEs
  stay for the "any EVSE" reservations;
- a reservation ends when a transaction uses it, when cancelled, and at its expiry;
  2.x tells the CSMS of an expiry with ReservationStatusUpdate (Expired).
"""
from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import attrs

from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.smart import utc_now
from ocpp_sync.station.tokens import IdToken, token_from_wire

__all__ = ["Reservation", "ReservationStore", "Reservations", "AVAILABLE", "OCCUPIED", "FAULTED",
           "UNAVAILABLE", "ANY_EVSE"]

#: EVSE states, as the application reports them.
AVAILABLE = "Available"
OCCUPIED = "Occupied"
FAULTED = "Faulted"
UNAVAILABLE = "Unavailable"

#: The EVSE number of a reservation for whichever EVSE is free (1.6 connector 0).
ANY_EVSE = 0


@attrs.frozen
class Reservation:
    """``token`` (or one of ``group``) may charge on ``evse_id`` (:data:`ANY_EVSE`: on any) until ``expiry``."""

    id: int
    evse_id: int
    token: IdToken
    expiry: datetime.datetime
    group: IdToken | None = None

    def admits(self, token: IdToken, group: IdToken | None) -> bool:
        """Whether ``token``, of ``group`` (its own parentIdTag / groupIdToken), may use it."""
        return token == self.token or (self.group is not None and group is not None and group == self.group)


class ReservationStore:
    """The reservations of one station of ``evse_count`` EVSEs (1.6 connectors); thread-safe.

    ``enabled`` says whether it takes reservations at all, ``any_evse`` whether it takes
    them for no EVSE in particular.
    """

    def __init__(self, version: str, *, evse_count: int = 1, enabled: bool = True,
                 any_evse: bool = True) -> None:
        self.version = version
        self.evse_count = evse_count
        self.enabled = enabled
        self.any_evse = any_evse
        self._lock = threading.Lock()
        self._states = dict.fromkeys(range(1, evse_count + 1), AVAILABLE)
        self._reservations: dict[int, Reservation] = {}

    def set_state(self, evse_id: int, state: str) -> None:
        """The EVSE is now ``state`` (:data:`AVAILABLE`, :data:`OCCUPIED`, :data:`FAULTED`, :data:`UNAVAILABLE`)."""
        if evse_id not in self._states:
            raise ValueError(f"no EVSE {evse_id}")
        with self._lock:
            self._states[evse_id] = state

    def state(self, evse_id: int) -> str:
        with self._lock:
            return self._states[evse_id]

    def reservations(self) -> list[Reservation]:
        with self._lock:
            return sorted(self._reservations.values(), key=lambda r: r.id)

    def reserved(self, evse_id: int) -> Reservation | None:
        """The reservation held on ``evse_id`` itself, if any."""
        with self._lock:
            return next((r for r in self._reservations.values() if r.evse_id == evse_id), None)

    # -- reserving -----------------------------------------------------------------------------

    def reserve(self, reservation: Reservation, now: datetime.datetime) -> str:
        """ReserveNow: the status to answer; the reservation is held when it is Accepted."""
        with self._lock:
            others = {rid: r for rid, r in self._reservations.items() if rid != reservation.id}
            status = self._status(reservation, others, now)
            if status == "Accepted":
                others[reservation.id] = reservation
                self._reservations = others
        return status

    def _status(self, reservation: Reservation, others: dict[int, Reservation], now: datetime.datetime) -> str:
        evse = reservation.evse_id
        if not self.enabled or reservation.expiry <= now or not 0 <= evse <= self.evse_count:
            return "Rejected"
        if evse == ANY_EVSE:
            if not self.any_evse:
                return "Rejected"
            free = self._free(others, excluding=None)
            if len(free) > sum(1 for r in others.values() if r.evse_id == ANY_EVSE):
                return "Accepted"
            states = set(self._states.values())
            if states == {FAULTED}:
                return FAULTED
            if states <= {FAULTED, UNAVAILABLE}:
                return UNAVAILABLE
            return OCCUPIED
        state = self._states[evse]
        if state in (FAULTED, UNAVAILABLE, OCCUPIED):
            return state
        if any(r.evse_id == evse for r in others.values()):
            return OCCUPIED
        if len(self._free(others, excluding=evse)) < sum(1 for r in others.values() if r.evse_id == ANY_EVSE):
            return OCCUPIED  # the EVSE is kept free for an "any EVSE" reservation
        return "Accepted"

    def _free(self, reservations: dict[int, Reservation], excluding: int | None) -> list[int]:
        held = {r.evse_id for r in reservations.values()}
        return [e for e, s in self._states.items() if s == AVAILABLE and e not in held and e != excluding]

    def cancel(self, reservation_id: int) -> bool:
        """CancelReservation: True (Accepted) when it was held, False (Rejected) when unknown."""
        with self._lock:
            return self._reservations.pop(reservation_id, None) is not None

    def expire(self, now: datetime.datetime) -> list[Reservation]:
        """End the reservations whose expiry has come; returns them."""
        with self._lock:
            gone = [r for r in self._reservations.values() if r.expiry <= now]
            for r in gone:
                del self._reservations[r.id]
        return gone

    # -- using ---------------------------------------------------------------------------------

    def may_charge(self, evse_id: int, token: IdToken, group: IdToken | None = None) -> bool:
        """Whether ``token`` (of ``group``) may start charging on ``evse_id`` as far as the
        reservations go (call :meth:`expire` first)."""
        with self._lock:
            return self._may_charge(evse_id, token, group)

    def _may_charge(self, evse_id: int, token: IdToken, group: IdToken | None) -> bool:
        own = next((r for r in self._reservations.values() if r.evse_id == evse_id), None)
        if own is not None:
            return own.admits(token, group)
        anywhere = [r for r in self._reservations.values() if r.evse_id == ANY_EVSE]
        if any(r.admits(token, group) for r in anywhere):
            return True
        return len(self._free(self._reservations, excluding=evse_id)) >= len(anywhere)

    def use(self, evse_id: int, token: IdToken, group: IdToken | None = None) -> Reservation | None:
        """A transaction of ``token`` starts on ``evse_id``: the reservation it uses ends and is
        returned (its id goes into a 1.6 StartTransaction's reservationId); None if it uses none."""
        with self._lock:
            candidates = [r for r in self._reservations.values() if r.evse_id == evse_id] + \
                [r for r in sorted(self._reservations.values(), key=lambda r: r.expiry) if r.evse_id == ANY_EVSE]
            used = next((r for r in candidates if r.admits(token, group)), None)
            if used is not None:
                del self._reservations[used.id]
        return used


class Reservations:
    """The reservation handlers of one charge point, over ``store``.

    ``clock`` gives the time; ``reporter`` (2.x) sends ReservationStatusUpdate after an
    expiry, which :meth:`tick` (call it now and then, a heartbeat loop will do) or any
    query here notices.
    """

    def __init__(self, store: ReservationStore, *, clock: Callable[[], datetime.datetime] = utc_now,
                 reporter: Reporter | None = None) -> None:
        self.store = store
        self.version = store.version
        self.clock = clock
        self.reporter = reporter
        self._m: ModuleType = version_module(self.version)
        self._cp: Any = None

    def tick(self) -> list[Reservation]:
        """End the expired reservations (telling a 2.x CSMS); returns them."""
        gone = self.store.expire(self.clock())
        cp = self._cp
        if gone and self.version != "1.6" and cp is not None and self.reporter is not None:
            updates = [self._m.ReservationStatusUpdateRequest(reservation_id=r.id,
                                                              reservation_update_status="Expired")
                       for r in gone]

            def send_all() -> None:
                for update in updates:
                    cp.send(update)

            self.reporter.submit(send_all)
        return gone

    def may_charge(self, evse_id: int, token: IdToken, group: IdToken | None = None) -> bool:
        """Whether the reservations let ``token`` (of ``group``) charge on ``evse_id`` now."""
        self.tick()
        return self.store.may_charge(evse_id, token, group)

    def use(self, evse_id: int, token: IdToken, group: IdToken | None = None) -> Reservation | None:
        """A transaction starts: see :meth:`ReservationStore.use`."""
        self.tick()
        return self.store.use(evse_id, token, group)

    # -- the handlers --------------------------------------------------------------------------

    def attach(self, cp: Any) -> None:
        """Answer ReserveNow and CancelReservation for ``cp`` (a ChargePoint of the store's version)."""
        m = self._m
        self._cp = cp
        cp.on(m.ReserveNowRequest)(self.on_reserve_now)
        cp.on(m.CancelReservationRequest)(self.on_cancel_reservation)

    def on_reserve_now(self, request: Any) -> Any:
        self.tick()
        if self.version == "1.6":
            reservation = Reservation(
                id=request.reservation_id, evse_id=request.connector_id, token=IdToken(request.id_tag),
                expiry=request.expiry_date,
                group=None if request.parent_id_tag is None else IdToken(request.parent_id_tag))
        else:
            reservation = Reservation(
                id=request.id, evse_id=ANY_EVSE if request.evse_id is None else request.evse_id,
                token=token_from_wire(self.version, request.id_token), expiry=request.expiry_date_time,
                group=None if request.group_id_token is None else token_from_wire(self.version,
                                                                                  request.group_id_token))
        if self.version != "1.6" and request.evse_id == ANY_EVSE:
            status = "Rejected"  # 2.x numbers EVSEs from 1; "any" is an absent evseId
        else:
            status = self.store.reserve(reservation, self.clock())
        return self._m.ReserveNowResponse(status=status)

    def on_cancel_reservation(self, request: Any) -> Any:
        self.tick()
        return self._m.CancelReservationResponse(
            status="Accepted" if self.store.cancel(request.reservation_id) else "Rejected")
