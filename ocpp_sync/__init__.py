"""Synchronous, threaded OCPP-J (1.6, 2.0.1, 2.1) for charge points and central systems."""
from __future__ import annotations

from ._backoff import BackOff, TransactionRetry
from ._chargepoint import ChargePoint
from ._codec import from_payload, to_payload
from ._csms import CSMS, Station
from ._errors import (
    CallError,
    CallTimeout,
    ConnectionClosed,
    OCPPError,
    ProtocolError,
    ValidationError,
)
from ._offline_queue import QueuedCall
from ._transports.base import HandshakeError

__all__ = [
    "ChargePoint",
    "CSMS",
    "Station",
    "to_payload",
    "from_payload",
    "OCPPError",
    "ValidationError",
    "CallError",
    "CallTimeout",
    "ConnectionClosed",
    "ProtocolError",
    "HandshakeError",
    "QueuedCall",
    "BackOff",
    "TransactionRetry",
]
