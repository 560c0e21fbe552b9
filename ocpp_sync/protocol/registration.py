"""A station's registration with the CSMS: what each side may send before it is Accepted.

The rules, as the specifications give them (requirement ids in docs/registration.md):

- Until the CSMS has accepted a station's BootNotification, the station sends
  nothing but BootNotification, and what the CSMS itself asked for: the message
  a TriggerMessage requested, the NotifyReport of a GetBaseReport or GetReport.
  The CSMS answers anything else with CALLERROR SecurityError (2.0.1 B01.FR.10,
  B02.FR.09, B03.FR.07; we hold 1.6 and 2.1 to the same answer).
- While a station is Pending, the CSMS does not start or stop transactions on it
  (1.6 section 4.2: RemoteStartTransaction, RemoteStopTransaction; 2.x: their
  RequestStart/RequestStopTransaction); while it is Rejected, the CSMS sends it
  nothing (2.0.1 B03.FR.03).

The state belongs to the station, not to one connection: a station reconnects
far more often than it boots, and does not boot again to reconnect, so one
:class:`Registration` lives as long as the CSMS knows the station, and every
connection of the station consults it. No I/O and no threads: the RPC core
calls it, under its guard, once per message (a set look-up).
"""
from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["Registration", "RegistrationStatus", "RegistrationRefused"]

BOOT = "BootNotification"
NOTIFY_REPORT = "NotifyReport"
# TriggerMessage's requestedMessage names the message it asks for; these two name another action.
_TRIGGERED_ACTION = {"SignChargingStationCertificate": "SignCertificate",
                     "SignV2GCertificate": "SignCertificate",
                     "SignCombinedCertificate": "SignCertificate"}
# Triggers and reports remembered at most, per message: a CSMS that asks in a loop for a
# message the station never sends must not grow this.
_MAX_ASKED = 16
_NOT_WHILE_PENDING = {"1.6": frozenset({"RemoteStartTransaction", "RemoteStopTransaction"}),
                      "2.0.1": frozenset({"RequestStartTransaction", "RequestStopTransaction"}),
                      "2.1": frozenset({"RequestStartTransaction", "RequestStopTransaction"})}


class RegistrationStatus(str, enum.Enum):
    """Where a station stands; UNKNOWN: the CSMS has no record of a boot answer for it."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"
    UNKNOWN = "Unknown"


class RegistrationRefused(Exception):
    """Why a message may not be sent now; the RPC core turns it into the error each side needs."""


class Registration:
    """One station's registration status and the messages the CSMS asked it for.

    ``status`` starts as given (UNKNOWN: no record); ``unknown_as`` is what an
    UNKNOWN station counts as (ACCEPTED by default: right after a CSMS restart
    every connected station is unknown, and locking a working fleet out until
    each one reboots would be worse than serving a station whose boot we did
    not see; PENDING answers SecurityError until a boot).
    """

    def __init__(self, version: str, status: RegistrationStatus = RegistrationStatus.UNKNOWN, *,
                 unknown_as: RegistrationStatus = RegistrationStatus.ACCEPTED) -> None:
        if unknown_as is RegistrationStatus.UNKNOWN:
            raise ValueError("unknown_as must be Accepted, Pending or Rejected")
        self.version = version
        self.status = RegistrationStatus(status)
        self.unknown_as = RegistrationStatus(unknown_as)
        #: No rule applies (the station counts as Accepted): the one attribute the RPC core
        #: reads per message on the usual path.
        self.open = self.effective is RegistrationStatus.ACCEPTED
        self._asked: Counter[str] = Counter()   # messages a TriggerMessage asked for, not yet come
        self._reports = 0                        # GetBaseReport / GetReport whose NotifyReport is due

    @property
    def effective(self) -> RegistrationStatus:
        """The status the rules apply."""
        return self.unknown_as if self.status is RegistrationStatus.UNKNOWN else self.status

    def booted(self, status: str) -> RegistrationStatus:
        """The CSMS answered a BootNotification with ``status``; the new status."""
        self.status = RegistrationStatus(str(getattr(status, "value", status)))
        self.open = self.effective is RegistrationStatus.ACCEPTED
        if self.status is RegistrationStatus.ACCEPTED:
            self._asked.clear()
            self._reports = 0
        return self.status

    def check_station_call(self, action: str, payload: Any) -> None:
        """A call from the station: RegistrationRefused if the CSMS must answer SecurityError."""
        if action == BOOT or self.effective is RegistrationStatus.ACCEPTED:
            return
        if self._asked[action] > 0:
            self._asked[action] -= 1
            if self._asked[action] == 0:
                del self._asked[action]
            return
        if action == NOTIFY_REPORT and self._reports > 0:
            if not (isinstance(payload, Mapping) and payload.get("tbc")):
                self._reports -= 1   # the last part of one report
            return
        raise RegistrationRefused(f"{action} before the station's boot was accepted "
                                  f"(it is {self.effective.value})")

    def check_csms_call(self, action: str, payload: Any) -> None:
        """A call the CSMS is about to send: RegistrationRefused if the station's status forbids it.

        Allowed calls that ask the station for a message open the way for that message.
        """
        status = self.effective
        if status is RegistrationStatus.REJECTED:
            raise RegistrationRefused(f"the station is Rejected: the CSMS sends it nothing, not {action}")
        if status is RegistrationStatus.PENDING and action in _NOT_WHILE_PENDING[self.version]:
            raise RegistrationRefused(f"{action} is not allowed while the station is Pending")
        if status is RegistrationStatus.ACCEPTED:
            return
        if action == "TriggerMessage" and isinstance(payload, Mapping):
            requested = str(payload.get("requestedMessage", ""))
            asked = _TRIGGERED_ACTION.get(requested, requested)
            self._asked[asked] = min(self._asked[asked] + 1, _MAX_ASKED)
        elif action in ("GetBaseReport", "GetReport"):
            self._reports = min(self._reports + 1, _MAX_ASKED)
