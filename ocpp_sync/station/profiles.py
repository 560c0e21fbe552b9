"""The store of installed charging profiles, with each version's acceptance and replacement rules.

Pure: the caller passes the time and the running transactions. 1.6 (section
5.16 / 3.13) replaces a profile of the same id, or of the same stack level and
purpose on the same connector. 2.0.1 and 2.1 (use case K01) replace a profile of
the same id only, and refuse one whose stack level and purpose (and, for a
TxProfile, transaction) collide with another's on the same EVSE while both
would be valid at once. Both refuse a station maximum off EVSE 0 and a
TxProfile without a transaction to bind to; 2.x also refuses external
constraints from the CSMS, which only :meth:`ProfileStore.set_external` installs.
"""
from __future__ import annotations

import datetime
import threading
from collections.abc import Iterable, Mapping

import attrs

from ocpp_sync.station.schedule import (
    EXTERNAL,
    MAX,
    TX,
    TX_DEFAULT,
    CompositePeriod,
    Profile,
    Transaction,
    composite_schedule,
)

__all__ = ["Verdict", "Entry", "ProfileStore", "ACCEPTED", "REJECTED"]

ACCEPTED = "Accepted"
REJECTED = "Rejected"


@attrs.frozen
class Verdict:
    """What SetChargingProfile answers: ``status``, and ``reason`` (a 2.x reasonCode) when not Accepted."""

    status: str
    reason: str = ""
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED


@attrs.frozen
class Entry:
    """An installed profile, the message object it came in (for reports) and its limit source."""

    profile: Profile
    wire: object = None
    source: str = "CSO"


def _rejected(reason: str, detail: str) -> Verdict:
    return Verdict(REJECTED, reason, detail)


def _overlap(a: Profile, b: Profile) -> bool:
    low = max(a.valid_from or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
              b.valid_from or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc))
    high = min(a.valid_to or datetime.datetime.max.replace(tzinfo=datetime.timezone.utc),
               b.valid_to or datetime.datetime.max.replace(tzinfo=datetime.timezone.utc))
    return low < high


class ProfileStore:
    """Installed profiles of one station; thread-safe, every method short.

    ``evse_count`` EVSEs (1.6 connectors) numbered from 1; the limits are the ones
    a station announces (1.6 ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods,
    MaxChargingProfilesInstalled, ChargingScheduleAllowedChargingRateUnit; 2.x
    SmartChargingCtrlr ProfileStackLevel, PeriodsPerSchedule, Entries, RateUnit).
    """

    def __init__(self, version: str, *, evse_count: int = 1, max_stack_level: int = 8,
                 max_periods: int = 24, max_profiles: int = 32,
                 rate_units: Iterable[str] = ("A", "W")) -> None:
        self.version = version
        self.evse_count = evse_count
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles
        self.rate_units = tuple(rate_units)
        self._lock = threading.Lock()
        self._entries: dict[int, Entry] = {}

    @property
    def v16(self) -> bool:
        return self.version == "1.6"

    def entries(self) -> list[Entry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.profile.id)

    def profiles(self) -> list[Profile]:
        return [e.profile for e in self.entries()]

    # -- installing ---------------------------------------------------------------------------

    def check(self, profile: Profile, transactions: Mapping[int, Transaction]) -> Verdict:
        """Whether ``profile`` may be installed, without installing it."""
        schedule = profile.schedule
        if not 0 <= profile.evse_id <= self.evse_count:
            return _rejected("UnknownEvse", f"no EVSE {profile.evse_id}")
        if not 0 <= profile.stack_level <= self.max_stack_level:
            return _rejected("InvalidStackLevel", f"stack levels go from 0 to {self.max_stack_level}")
        if schedule.unit not in self.rate_units:
            return _rejected("InvalidSchedule", f"this station limits in {', '.join(self.rate_units)}")
        starts = [p.start for p in schedule.periods]
        if not starts or len(starts) > self.max_periods:
            return _rejected("InvalidSchedule", f"1 to {self.max_periods} periods")
        if starts[0] != 0 or any(a >= b for a, b in zip(starts, starts[1:], strict=False)):
            return _rejected("InvalidSchedule", "periods start at 0 and rise")
        if any(p.limit < 0 for p in schedule.periods):
            return _rejected("InvalidSchedule", "a limit below 0")
        if profile.valid_from and profile.valid_to and profile.valid_to <= profile.valid_from:
            return _rejected("InvalidValidity", "validTo is not after validFrom")
        if profile.kind == "Recurring" and (profile.recurrency is None or schedule.start_schedule is None):
            return _rejected("InvalidSchedule", "a recurring profile needs recurrencyKind and startSchedule")
        if not self.v16 and profile.kind in ("Absolute", "Recurring") and schedule.start_schedule is None:
            return _rejected("InvalidSchedule", f"an {profile.kind} schedule needs startSchedule")
        if not self.v16 and profile.kind == "Relative" and schedule.start_schedule is not None:
            return _rejected("InvalidSchedule", "a Relative schedule has no startSchedule")
        if profile.purpose == MAX and profile.evse_id != 0:
            return _rejected("InvalidProfile", "the station maximum belongs on EVSE 0")
        if profile.purpose == EXTERNAL:
            return _rejected("InvalidProfile", "external constraints are not set by the CSMS")
        if profile.purpose == TX:
            verdict = self._check_tx(profile, transactions)
            if not verdict.accepted:
                return verdict
        if not self.v16:
            for other in self.entries():
                o = other.profile
                if (o.id != profile.id and o.purpose == profile.purpose and o.evse_id == profile.evse_id
                        and o.stack_level == profile.stack_level and _overlap(o, profile)
                        and (profile.purpose != TX or o.transaction_id == profile.transaction_id)):
                    return _rejected("DuplicateProfile", f"profile {o.id} has this stack level and purpose")
        with self._lock:
            known = profile.id in self._entries or any(self._replaced_v16(e.profile, profile)
                                                       for e in self._entries.values())
            if not known and len(self._entries) >= self.max_profiles:
                return _rejected("TooManyProfiles", f"at most {self.max_profiles} profiles")
        return Verdict(ACCEPTED)

    def _check_tx(self, profile: Profile, transactions: Mapping[int, Transaction]) -> Verdict:
        running = transactions.get(profile.evse_id)
        if profile.evse_id == 0:
            return _rejected("InvalidProfile", "a TxProfile belongs on an EVSE")
        if running is None:
            return _rejected("TxNotFound", f"no transaction on EVSE {profile.evse_id}")
        if profile.transaction_id is None and not self.v16:
            return _rejected("TxNotFound", "a TxProfile needs a transactionId")
        if profile.transaction_id not in (None, running.id):
            return _rejected("TxNotFound", f"transaction {profile.transaction_id} is not running there")
        return Verdict(ACCEPTED)

    def _replaced_v16(self, old: Profile, new: Profile) -> bool:
        return self.v16 and (old.id == new.id or (
            old.stack_level == new.stack_level and old.purpose == new.purpose
            and old.evse_id == new.evse_id))

    def install(self, profile: Profile, *, transactions: Mapping[int, Transaction] | None = None,
                wire: object = None) -> Verdict:
        """Check and install ``profile``, replacing the ones the version says it replaces.

        ``transactions`` maps an EVSE to its running transaction; a TxProfile sent
        without a transaction id is bound to the running one. ``wire`` is the
        message object it came in, kept for GetChargingProfiles.
        """
        transactions = transactions or {}
        verdict = self.check(profile, transactions)
        if not verdict.accepted:
            return verdict
        if profile.purpose == TX and profile.transaction_id is None:
            profile = attrs.evolve(profile, transaction_id=transactions[profile.evse_id].id)
        with self._lock:
            for pid in [pid for pid, e in self._entries.items()
                        if pid == profile.id or self._replaced_v16(e.profile, profile)]:
                del self._entries[pid]
            self._entries[profile.id] = Entry(profile, wire)
        return verdict

    def set_external(self, profile: Profile, source: str = "EMS", wire: object = None) -> None:
        """Install a limit from outside OCPP (an energy manager): no CSMS rule applies."""
        with self._lock:
            self._entries[profile.id] = Entry(attrs.evolve(profile, purpose=EXTERNAL), wire, source)

    # -- removing and finding ------------------------------------------------------------------

    def clear(self, *, id: int | None = None, evse_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> list[int]:
        """Remove by id, or every profile matching all criteria given (all of them if none);
        returns the ids removed, none meaning the answer Unknown. External limits stay."""
        with self._lock:
            if id is not None:
                gone = [id] if id in self._entries and self._entries[id].profile.purpose != EXTERNAL else []
            else:
                gone = [pid for pid, e in self._entries.items() if e.profile.purpose != EXTERNAL
                        and (evse_id is None or e.profile.evse_id == evse_id)
                        and (purpose is None or e.profile.purpose == purpose)
                        and (stack_level is None or e.profile.stack_level == stack_level)]
            for pid in gone:
                del self._entries[pid]
        return gone

    def find(self, *, evse_id: int | None = None, purpose: str | None = None,
             stack_level: int | None = None, ids: Iterable[int] | None = None,
             sources: Iterable[str] | None = None) -> list[Entry]:
        """The entries matching every criterion given (GetChargingProfiles)."""
        wanted_ids = set(ids) if ids is not None else None
        wanted_sources = set(sources) if sources is not None else None
        return [e for e in self.entries()
                if (evse_id is None or e.profile.evse_id == evse_id)
                and (purpose is None or e.profile.purpose == purpose)
                and (stack_level is None or e.profile.stack_level == stack_level)
                and (wanted_ids is None or e.profile.id in wanted_ids)
                and (wanted_sources is None or e.source in wanted_sources)]

    def end_transaction(self, transaction_id: str) -> list[int]:
        """The transaction ended: its TxProfiles go. Returns their ids."""
        with self._lock:
            gone = [pid for pid, e in self._entries.items()
                    if e.profile.purpose == TX and e.profile.transaction_id == transaction_id]
            for pid in gone:
                del self._entries[pid]
        return gone

    def composite(self, evse_id: int, start: datetime.datetime, duration: int, unit: str = "A", *,
                  transaction: Transaction | None = None, voltage: float = 230.0,
                  default_phases: int = 3) -> list[CompositePeriod]:
        """:func:`composite_schedule` over the installed profiles."""
        return composite_schedule(self.profiles(), evse_id=evse_id, start=start, duration=duration,
                                  unit=unit, transaction=transaction, voltage=voltage,
                                  default_phases=default_phases)


#: The purposes as each version spells them.
PURPOSE_NAMES = {
    "1.6": {"ChargePointMaxProfile": MAX, "TxDefaultProfile": TX_DEFAULT, "TxProfile": TX},
    "2.x": {"ChargingStationMaxProfile": MAX, "TxDefaultProfile": TX_DEFAULT, "TxProfile": TX,
            "ChargingStationExternalConstraints": EXTERNAL},
}
