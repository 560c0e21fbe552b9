"""The station stack: what a real charge point keeps and answers on its own.

Configuration (1.6 keys, the 2.x device model), smart charging, local
authorization and reservations, each a store with pure methods, and handlers
that :meth:`attach` them to a :class:`ocpp_sync.ChargePoint` through its public
``on`` and ``send``. This package sits beside ``chargepoint``: it never imports it.
"""
from ocpp_sync.station.authcache import AuthCache
from ocpp_sync.station.authorization import AuthOptions, Authorization, Decision, decide
from ocpp_sync.station.configuration import ConfigurationStore, Setting
from ocpp_sync.station.device_model import (
    ATTRIBUTE_TYPES,
    MUTABILITIES,
    Attribute,
    ComponentId,
    DeviceModel,
    Outcome,
    Variable,
    VariableId,
)
from ocpp_sync.station.device_model_handlers import Change, DeviceModelHandlers
from ocpp_sync.station.keys16 import STANDARD_KEYS, KeyDefinition
from ocpp_sync.station.locallist import DIFFERENTIAL, FULL, ListVerdict, LocalList
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.reservations import ANY_EVSE, Reservation, Reservations, ReservationStore
from ocpp_sync.station.tokens import IdToken, TokenInfo
from ocpp_sync.station.values import DATA_TYPES, Characteristics, InvalidValue

__all__ = [
    # 1.6 configuration keys
    "ConfigurationStore", "KeyDefinition", "STANDARD_KEYS", "Setting",
    # the 2.0.1 / 2.1 device model
    "ATTRIBUTE_TYPES", "MUTABILITIES", "DATA_TYPES", "Attribute", "Change", "Characteristics",
    "ComponentId", "DeviceModel", "DeviceModelHandlers", "InvalidValue", "Outcome", "Variable",
    "VariableId",
    # local authorization and reservations
    "AuthCache", "AuthOptions", "Authorization", "Decision", "decide", "DIFFERENTIAL", "FULL",
    "ListVerdict", "LocalList", "ANY_EVSE", "Reservation", "Reservations", "ReservationStore",
    "IdToken", "TokenInfo",
    # shared
    "Reporter",
]
