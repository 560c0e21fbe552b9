"""Smart charging on the wire: SetChargingProfile, ClearChargingProfile, GetCompositeSchedule
and (2.x) GetChargingProfiles, answered from a :class:`ProfileStore`.

The application tells :class:`SmartCharging` when a transaction starts and ends
(:meth:`~SmartCharging.start_transaction`, :meth:`~SmartCharging.end_transaction`)
and reads the limit to apply with :meth:`~SmartCharging.limit_now`; the rest is
answered here. Times the CSMS leaves open are filled from ``clock``. The
ReportChargingProfiles series is handed to a :class:`Reporter` once the answer
to GetChargingProfiles is on the wire (the charge point's ``after`` hook), so the
CSMS always reads the answer first.
"""
from __future__ import annotations

import datetime
import math
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.profiles import PURPOSE_NAMES, Entry, ProfileStore, Verdict
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.schedule import CompositePeriod, Period, Profile, Schedule, Transaction, convert

__all__ = ["SmartCharging", "profile_from_wire", "utc_now"]

#: How many profiles one ReportChargingProfiles carries.
PROFILES_PER_REPORT = 8


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _purpose_names(version: str) -> dict[str, str]:
    return PURPOSE_NAMES["1.6" if version == "1.6" else "2.x"]


def profile_from_wire(version: str, wire: Any, evse_id: int) -> Profile:
    """A 1.6 ``ChargingProfile`` or a 2.x ``ChargingProfileType`` as a :class:`Profile`.

    ValueError for what the store cannot represent: a purpose it does not know
    (2.1 PriorityCharging, LocalGeneration) or a 2.1 period without a limit.
    """
    try:
        purpose = _purpose_names(version)[str(wire.charging_profile_purpose)]
    except KeyError:
        raise ValueError(f"purpose {wire.charging_profile_purpose} is not supported") from None
    if version == "1.6":
        pid, schedule, tx = wire.charging_profile_id, wire.charging_schedule, wire.transaction_id
    else:
        pid, schedule, tx = wire.id, wire.charging_schedule[0], wire.transaction_id
    periods = []
    for p in schedule.charging_schedule_period:
        if p.limit is None:
            raise ValueError("a period without a limit is not supported")
        periods.append(Period(p.start_period, float(p.limit), p.number_phases))
    return Profile(
        id=pid, stack_level=wire.stack_level, purpose=purpose, kind=str(wire.charging_profile_kind),
        evse_id=evse_id, recurrency=None if wire.recurrency_kind is None else str(wire.recurrency_kind),
        valid_from=wire.valid_from, valid_to=wire.valid_to,
        transaction_id=None if tx is None else str(tx),
        schedule=Schedule(unit=str(schedule.charging_rate_unit), periods=tuple(periods),
                          start_schedule=schedule.start_schedule, duration=schedule.duration,
                          min_charging_rate=schedule.min_charging_rate))


def _next_second(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` up to a whole second: a schedule reported from a second already begun would
    show, for its first period, the limit of an instant before a profile or transaction that
    started within that second."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + datetime.timedelta(seconds=1)


def _floor_tenth(value: float) -> float:
    """Down to a multiple of 0.1 (the 1.6 schema's step), never above the limit."""
    return math.floor(round(value * 10, 6)) / 10


class SmartCharging:
    """The smart charging handlers of one charge point, over ``store``.

    ``max_current`` (A per phase) is what the hardware gives where no profile
    limits it; ``voltage`` and ``phases`` convert between A and W. ``clock`` gives
    the time; ``reporter`` sends the 2.x ReportChargingProfiles series (one of its
    own, started at the first report, when None: :meth:`stop` ends it).
    """

    def __init__(self, store: ProfileStore, *, max_current: float = 32.0, voltage: float = 230.0,
                 phases: int = 3, clock: Callable[[], datetime.datetime] = utc_now,
                 reporter: Reporter | None = None) -> None:
        self.store = store
        self.version = store.version
        self.max_current = max_current
        self.voltage = voltage
        self.phases = phases
        self.clock = clock
        self._own_reporter = reporter is None
        self.reporter = reporter or Reporter("ocpp-station-charging-profile-reports")
        self._m: ModuleType = version_module(self.version)
        self._lock = threading.Lock()
        self._transactions: dict[int, Transaction] = {}
        self._pending: dict[int, list[Any]] = {}  # requestId: the series, until its answer is sent
        self._pending_lock = threading.Lock()
        self._cp: Any = None

    # -- what the application tells and asks ----------------------------------------------------

    def start_transaction(self, evse_id: int, transaction_id: str | int,
                          start: datetime.datetime | None = None) -> Transaction:
        """A transaction began on ``evse_id``: Relative schedules and TxProfiles follow it."""
        tx = Transaction(str(transaction_id), evse_id, start or self.clock())
        with self._lock:
            self._transactions[evse_id] = tx
        return tx

    def end_transaction(self, transaction_id: str | int) -> None:
        """The transaction ended: its TxProfiles are removed."""
        with self._lock:
            for evse, tx in list(self._transactions.items()):
                if tx.id == str(transaction_id):
                    del self._transactions[evse]
        self.store.end_transaction(str(transaction_id))

    def transactions(self) -> dict[int, Transaction]:
        with self._lock:
            return dict(self._transactions)

    def composite(self, evse_id: int, duration: int, unit: str = "A",
                  start: datetime.datetime | None = None) -> list[CompositePeriod]:
        """The composite schedule from now (or ``start``), the hardware limit filling the gaps."""
        start = start or self.clock()
        periods = self.store.composite(evse_id, start, duration, unit,
                                       transaction=self.transactions().get(evse_id),
                                       voltage=self.voltage, default_phases=self.phases)
        out: list[CompositePeriod] = []
        for p in periods:
            limit = p.limit
            if limit is None:
                limit = convert(self.max_current, "A", unit, p.number_phases, self.voltage)
            if out and out[-1].limit == limit and out[-1].number_phases == p.number_phases:
                continue
            out.append(CompositePeriod(p.start, limit, p.number_phases))
        return out

    def limit_now(self, evse_id: int, unit: str = "A") -> float:
        """The limit to apply on ``evse_id`` at this moment."""
        limit = self.composite(evse_id, 1, unit)[0].limit
        assert limit is not None
        return limit

    # -- the handlers --------------------------------------------------------------------------

    def attach(self, cp: Any) -> None:
        """Answer the smart charging requests of ``cp`` (a ChargePoint of the store's version)."""
        m = self._m
        self._cp = cp
        cp.on(m.SetChargingProfileRequest)(self.on_set_charging_profile)
        cp.on(m.ClearChargingProfileRequest)(self.on_clear_charging_profile)
        cp.on(m.GetCompositeScheduleRequest)(self.on_get_composite_schedule)
        if self.version != "1.6":
            cp.on(m.GetChargingProfilesRequest)(self.on_get_charging_profiles)
            cp.after(m.GetChargingProfilesRequest)(self._send_reports)

    def stop(self, timeout: float = 5.0) -> None:
        """End the reporter thread if it is ours (sending what is queued first)."""
        if self._own_reporter:
            self.reporter.stop(timeout)

    def _status_info(self, verdict: Verdict) -> Any:
        if self.version == "1.6" or verdict.accepted:
            return None
        return self._m.StatusInfoType(reason_code=verdict.reason[:20], additional_info=verdict.detail[:512])

    def on_set_charging_profile(self, request: Any) -> Any:
        m = self._m
        if self.version == "1.6":
            wire, evse = request.cs_charging_profiles, request.connector_id
        else:
            wire, evse = request.charging_profile, request.evse_id
        try:
            profile = profile_from_wire(self.version, wire, evse)
        except ValueError as exc:
            verdict = Verdict("NotSupported" if self.version == "1.6" else "Rejected", "UnsupportedParam", str(exc))
        else:
            verdict = self.store.install(profile, transactions=self.transactions(), wire=wire)
        if self.version == "1.6":
            return m.SetChargingProfileResponse(status=verdict.status)
        return m.SetChargingProfileResponse(status=verdict.status, status_info=self._status_info(verdict))

    def on_clear_charging_profile(self, request: Any) -> Any:
        names = _purpose_names(self.version)
        if self.version == "1.6":
            criteria = request
            evse = request.connector_id
        else:
            criteria = request.charging_profile_criteria
            evse = None if criteria is None else criteria.evse_id
        purpose = None if criteria is None or criteria.charging_profile_purpose is None else \
            names.get(str(criteria.charging_profile_purpose), "?")
        gone = self.store.clear(
            id=request.id if self.version == "1.6" else request.charging_profile_id,
            evse_id=evse, purpose=purpose,
            stack_level=None if criteria is None else criteria.stack_level)
        return self._m.ClearChargingProfileResponse(status="Accepted" if gone else "Unknown")

    def on_get_composite_schedule(self, request: Any) -> Any:
        m = self._m
        evse = request.connector_id if self.version == "1.6" else request.evse_id
        unit = str(request.charging_rate_unit or self.store.rate_units[0])
        if not 0 <= evse <= self.store.evse_count or unit not in self.store.rate_units \
                or request.duration <= 0:
            if self.version == "1.6":
                return m.GetCompositeScheduleResponse(status="Rejected")
            return m.GetCompositeScheduleResponse(
                status="Rejected", status_info=m.StatusInfoType(reason_code="UnknownEvse" if unit in
                                                                self.store.rate_units else "UnsupportedRateUnit"))
        start = _next_second(self.clock())
        periods = self.composite(evse, request.duration, unit, start)
        if self.version == "1.6":
            schedule = m.ChargingSchedule(
                duration=request.duration, start_schedule=start, charging_rate_unit=unit,
                charging_schedule_period=[m.ChargingSchedulePeriod(
                    start_period=p.start, limit=_floor_tenth(p.limit or 0.0), number_phases=p.number_phases)
                    for p in periods])
            return m.GetCompositeScheduleResponse(status="Accepted", connector_id=evse, schedule_start=start,
                                                  charging_schedule=schedule)
        return m.GetCompositeScheduleResponse(status="Accepted", schedule=m.CompositeScheduleType(
            evse_id=evse, duration=request.duration, schedule_start=start, charging_rate_unit=unit,
            charging_schedule_period=[m.ChargingSchedulePeriodType(
                start_period=p.start, limit=_floor_tenth(p.limit or 0.0), number_phases=p.number_phases)
                for p in periods]))

    def on_get_charging_profiles(self, request: Any) -> Any:
        m = self._m
        criteria = request.charging_profile
        purpose = None if criteria.charging_profile_purpose is None else \
            _purpose_names(self.version).get(str(criteria.charging_profile_purpose), "?")
        found = self.store.find(evse_id=request.evse_id, purpose=purpose, stack_level=criteria.stack_level,
                                ids=criteria.charging_profile_id,
                                sources=None if criteria.charging_limit_source is None
                                else [str(s) for s in criteria.charging_limit_source])
        found = [e for e in found if e.wire is not None]
        if not found:
            return m.GetChargingProfilesResponse(status="NoProfiles")
        with self._pending_lock:
            self._pending[request.request_id] = self.reports(request.request_id, found)
        return m.GetChargingProfilesResponse(status="Accepted")

    def _send_reports(self, request: Any, response: Any) -> None:
        with self._pending_lock:
            reports = self._pending.pop(request.request_id, None)
        cp = self._cp
        if reports is None or cp is None or response.status != "Accepted":
            return

        def send_all() -> None:
            for report in reports:
                cp.send(report)

        self.reporter.submit(send_all)

    def reports(self, request_id: int, entries: list[Entry]) -> list[Any]:
        """ReportChargingProfiles messages for ``entries``: one series per EVSE and limit source,
        :data:`PROFILES_PER_REPORT` profiles each, ``tbc`` on all but the last."""
        m = self._m
        groups: dict[tuple[int, str], list[Any]] = {}
        for e in entries:
            groups.setdefault((e.profile.evse_id, e.source), []).append(e.wire)
        chunks = [(evse, source, wires[i:i + PROFILES_PER_REPORT])
                  for (evse, source), wires in sorted(groups.items())
                  for i in range(0, len(wires), PROFILES_PER_REPORT)]
        return [m.ReportChargingProfilesRequest(
            request_id=request_id, charging_limit_source=source, evse_id=evse, charging_profile=chunk,
            tbc=index < len(chunks) - 1 or None) for index, (evse, source, chunk) in enumerate(chunks)]
