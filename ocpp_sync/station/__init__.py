"""The station stack: what a real charge point keeps and answers on its own.

Configuration (1.6 keys, the 2.x device model), smart charging, local
authorization and reservations, each a store with pure methods, and handlers
that :meth:`attach` them to a :class:`ocpp_sync.ChargePoint` through its public
``on`` and ``send``. This package sits beside ``chargepoint``: it never imports it.
"""
from ocpp_sync.station.authcache import AuthCache
from ocpp_sync.station.authorization import AuthOptions, Authorization, Decision, decide
from ocpp_sync.station.locallist import DIFFERENTIAL, FULL, ListVerdict, LocalList
from ocpp_sync.station.reservations import ANY_EVSE, Reservation, Reservations, ReservationStore
from ocpp_sync.station.tokens import IdToken, TokenInfo

__all__ = ["AuthCache", "AuthOptions", "Authorization", "Decision", "decide", "DIFFERENTIAL", "FULL",
           "ListVerdict", "LocalList", "ANY_EVSE", "Reservation", "Reservations", "ReservationStore",
           "IdToken", "TokenInfo"]
