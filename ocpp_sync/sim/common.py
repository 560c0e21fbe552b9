"""What both simulated sides share: the exchange reports, the CSMS commands, small conversions.

Both sides speak 1.6 and 2.x (2.0.1 and 2.1 share the message shapes used
here). They report every exchange to an optional callback instead of printing,
so the CLI decides how to show it and tests can inspect it.
"""
from __future__ import annotations

import enum
import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.codec import to_payload

__all__ = ["Exchange", "Command", "Connector", "Reporter", "STATION", "CSMS"]

log = logging.getLogger("ocpp_sync.simulator")

STATION = "station"
CSMS = "csms"


@attrs.frozen
class Exchange:
    """One message seen by a simulated side: a request, its response, or an error."""

    station_id: str
    sender: str  # STATION or CSMS
    action: str
    kind: str  # "request", "result" or "error"
    payload: dict[str, Any]


Reporter = Callable[[Exchange], None]


@attrs.frozen
class Command:
    """Something the CSMS asked for that the driving thread has to carry out."""

    name: str  # "remote_start", "remote_stop", "reset", "trigger", "availability", "unlock", ...
    argument: Any = None


def now() -> datetime:
    return datetime.now(timezone.utc)


def is_16(version: str) -> bool:
    return version == "1.6"


def wire_value(value: Any) -> Any:
    """An enum member's wire value; plain strings (also accepted by the classes) as they are."""
    return value.value if isinstance(value, enum.Enum) else value


class Reporting:
    """Shared bookkeeping: report exchanges and count them by direction and action."""

    def __init__(self, report: Reporter | None) -> None:
        self._report = report
        self._count_lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()  # (sender, action) of requests

    def _emit(self, station_id: str, sender: str, action: str, kind: str, message: Any) -> None:
        if kind == "request":
            with self._count_lock:
                self.counts[(sender, action)] += 1
        if self._report is None:
            return
        payload = message if isinstance(message, dict) else to_payload(message)
        try:
            self._report(Exchange(station_id, sender, action, kind, payload))
        except Exception:
            log.exception("the exchange reporter failed")


def error_payload(exc: OCPPError) -> dict[str, Any]:
    return {"code": exc.code, "description": exc.description}


@attrs.define
class Connector:
    """One connector's state; 2.x maps connector ``n`` to EVSE ``n``, connector 1."""

    id: int
    status: str = "Available"
    transaction_id: Any = None
    id_tag: str | None = None
    meter_wh: int = 0
    seq_no: int = 0
    remote_start_id: int | None = None
