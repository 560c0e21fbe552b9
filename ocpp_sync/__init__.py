"""Synchronous, threaded OCPP-J (1.6, 2.0.1, 2.1) for charge points and central systems."""
from __future__ import annotations

from ocpp_sync._version import __version__
from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.chargepoint.outbox import Queued, QueuedCall
from ocpp_sync.csms.csms import CSMS, Station
from ocpp_sync.errors import (
    CLOSE_REPLACED,
    AddressInUse,
    CallError,
    CallTimeout,
    ConnectionClosed,
    HandshakeError,
    NotRegistered,
    OCPPError,
    ProtocolError,
    Replaced,
    StationTimeout,
    ValidationError,
)
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.registration import RegistrationStatus
from ocpp_sync.protocol.retry import BackOff, TransactionRetry
from ocpp_sync.protocol.versions import version_module

__all__ = [
    "__version__",
    "ChargePoint",
    "CSMS",
    "Station",
    "to_payload",
    "from_payload",
    "version_module",
    "OCPPError",
    "ValidationError",
    "CallError",
    "CallTimeout",
    "StationTimeout",
    "ConnectionClosed",
    "ProtocolError",
    "HandshakeError",
    "Replaced",
    "CLOSE_REPLACED",
    "NotRegistered",
    "RegistrationStatus",
    "AddressInUse",
    "QueuedCall",
    "Queued",
    "BackOff",
    "TransactionRetry",
]

# The classes and functions above show as ocpp_sync.X in tracebacks, reprs and help(), where
# the user found them, instead of the layout module that defines them (ocpp_sync.csms.csms,
# ocpp_sync.protocol.codec): those move between releases, this name does not, and pickles
# refer to it. ocpp_sync.errors keeps its own name: it is a public module.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").split(".")[1:2] in (["chargepoint"], ["csms"], ["protocol"]):
        _obj.__module__ = __name__
del _name, _obj
