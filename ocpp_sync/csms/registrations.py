"""The CSMS's record of its stations' registration, kept across their connections.

The rules themselves are the protocol core's (``protocol.registration``); this
module keeps one :class:`Registration` per station id for as long as the CSMS
knows the station, so a station that reconnects without booting keeps its
status, and loads and saves it through the application's store, so the status
survives a restart of the CSMS too.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Protocol

from ocpp_sync.protocol.registration import Registration, RegistrationStatus

__all__ = ["RegistrationStore", "Registrations", "MAX_REMEMBERED"]

log = logging.getLogger("ocpp_sync.csms")

#: Registrations kept in memory for stations that are gone (the oldest go first): a
#: station that reconnects finds its status, and random ids cannot grow the table without bound.
MAX_REMEMBERED = 10_000


class RegistrationStore(Protocol):
    """Where the application keeps registration statuses ("Accepted", "Pending", "Rejected")."""

    def load(self, station_id: str) -> str | None:
        """The status saved for this station, or None if there is none."""

    def save(self, station_id: str, status: str) -> None:
        """Keep the status a boot answer gave this station."""


class Registrations:
    """The registrations of one CSMS's stations, by id; thread-safe."""

    def __init__(self, unknown_as: RegistrationStatus, store: RegistrationStore | None) -> None:
        self.unknown_as = RegistrationStatus(unknown_as)
        self.store = store
        self._lock = threading.Lock()
        self._known: collections.OrderedDict[str, Registration] = collections.OrderedDict()

    def for_station(self, station_id: str, version: str) -> Registration:
        """The registration a new connection of ``station_id`` speaking ``version`` uses."""
        with self._lock:
            known = self._known.pop(station_id, None)
        if known is not None and known.version == version:
            registration = known
        else:
            status = known.status if known is not None else self._load(station_id)
            registration = Registration(version, status, unknown_as=self.unknown_as)
        with self._lock:
            self._known[station_id] = registration
            while len(self._known) > MAX_REMEMBERED:
                self._known.popitem(last=False)
        return registration

    def _load(self, station_id: str) -> RegistrationStatus:
        if self.store is None:
            return RegistrationStatus.UNKNOWN
        try:
            saved = self.store.load(station_id)
            return RegistrationStatus.UNKNOWN if saved is None else RegistrationStatus(saved)
        except Exception:
            log.exception("loading the registration of %r failed; it counts as unknown", station_id)
            return RegistrationStatus.UNKNOWN

    def save(self, station_id: str, status: RegistrationStatus) -> None:
        if self.store is None:
            return
        try:
            self.store.save(station_id, status.value)
        except Exception:
            log.exception("saving the registration of %r failed", station_id)
