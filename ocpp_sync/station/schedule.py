"""Charging profiles as plain values, and the composite schedule computed from them.

Nothing here knows a message class or a clock: the store and the handlers turn
1.6 and 2.x profiles into :class:`Profile` values and ask :func:`composite_schedule`
what limit applies to an EVSE (a 1.6 connector) over a window. The rules it applies:

- a profile counts only while valid (``valid_from <= t < valid_to``) and while its
  schedule runs: Absolute from ``start_schedule`` (without one, like Relative); Relative from the start of the
  transaction on the EVSE (the window's start when there is none); Recurring from
  the latest Daily or Weekly repetition of ``start_schedule``; each for ``duration``
  seconds when given, the last period lasting until then;
- within one purpose the running profile of the highest stack level wins (a
  TxDefaultProfile on the EVSE itself beats one on EVSE 0 of the same level);
- a TxProfile, bound to the EVSE's transaction, replaces the TxDefaultProfile;
- the result is the lowest of the station maximum, the external constraints and
  the transaction limit, each converted to the asked unit with its number of phases
  and the voltage (W = A x V x phases).
"""
from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Iterator

import attrs

__all__ = ["MAX", "TX_DEFAULT", "TX", "EXTERNAL", "PURPOSES", "Period", "Schedule", "Profile",
           "Transaction", "CompositePeriod", "composite_schedule", "limit_at", "convert",
           "DAY", "WEEK"]

#: The purposes, named apart from either version's spelling (1.6 ChargePointMaxProfile and
#: 2.x ChargingStationMaxProfile are both MAX).
MAX = "Max"
TX_DEFAULT = "TxDefault"
TX = "Tx"
EXTERNAL = "External"
PURPOSES = (MAX, TX_DEFAULT, TX, EXTERNAL)

DAY = 86_400
WEEK = 7 * DAY


@attrs.frozen
class Period:
    """One step of a schedule: from ``start`` seconds into it, at most ``limit``."""

    start: int
    limit: float
    number_phases: int | None = None


@attrs.frozen
class Schedule:
    """Periods in ``unit`` ("A" or "W"), sorted by start, the first at 0."""

    unit: str
    periods: tuple[Period, ...]
    start_schedule: datetime.datetime | None = None
    duration: int | None = None
    min_charging_rate: float | None = None


@attrs.frozen
class Profile:
    """A charging profile of either version; ``evse_id`` 0 is the whole station."""

    id: int
    stack_level: int
    purpose: str
    kind: str
    schedule: Schedule
    evse_id: int = 0
    recurrency: str | None = None
    valid_from: datetime.datetime | None = None
    valid_to: datetime.datetime | None = None
    transaction_id: str | None = None


@attrs.frozen
class Transaction:
    """A running transaction: what Relative and TxProfile schedules are tied to."""

    id: str
    evse_id: int
    start: datetime.datetime


@attrs.frozen
class CompositePeriod:
    """A step of the composite schedule; ``limit`` None: no profile limits this time."""

    start: int
    limit: float | None
    number_phases: int


def convert(limit: float, unit: str, to_unit: str, phases: int, voltage: float) -> float:
    """A limit in another unit: W = A x voltage x phases."""
    if unit == to_unit:
        return limit
    if to_unit == "W":
        return limit * voltage * phases
    return limit / (voltage * phases)


def _seconds(moment: datetime.datetime) -> float:
    return moment.timestamp()


def _origin(profile: Profile, at: float, transaction: Transaction | None, window_start: float) -> float:
    """When the schedule's run that covers ``at`` started (``transaction`` is the EVSE's)."""
    schedule = profile.schedule
    if profile.kind == "Relative" or schedule.start_schedule is None:
        return window_start if transaction is None else _seconds(transaction.start)
    first = _seconds(schedule.start_schedule)
    if profile.kind == "Recurring":
        period = WEEK if profile.recurrency == "Weekly" else DAY
        return first + math.floor((at - first) / period) * period
    return first


def _applies(profile: Profile, evse_id: int, transaction: Transaction | None) -> bool:
    if profile.purpose == MAX:
        return profile.evse_id == 0
    if profile.purpose == TX:
        return (evse_id != 0 and profile.evse_id == evse_id and transaction is not None
                and transaction.evse_id == evse_id
                and profile.transaction_id in (None, transaction.id))
    if profile.purpose == TX_DEFAULT and evse_id == 0:
        return False
    return profile.evse_id in (0, evse_id)


def limit_at(profile: Profile, at: float, *, transaction: Transaction | None = None,
             window_start: float | None = None) -> Period | None:
    """The period of ``profile`` in force at ``at`` (epoch seconds), or None if none is."""
    if profile.valid_from is not None and at < _seconds(profile.valid_from):
        return None
    if profile.valid_to is not None and at >= _seconds(profile.valid_to):
        return None
    origin = _origin(profile, at, transaction, at if window_start is None else window_start)
    if at < origin:
        return None
    offset = at - origin
    duration = profile.schedule.duration
    if duration is not None and offset >= duration:
        return None
    found = None
    for period in profile.schedule.periods:
        if period.start > offset:
            break
        found = period
    return found


def _changes(profile: Profile, transaction: Transaction | None, start: float, end: float) -> Iterator[float]:
    """Every moment in [start, end) where the profile's limit may change."""
    for moment in (profile.valid_from, profile.valid_to):
        if moment is not None:
            yield _seconds(moment)
    schedule = profile.schedule
    origins: list[float] = []
    if profile.kind == "Recurring" and schedule.start_schedule is not None:
        period = WEEK if profile.recurrency == "Weekly" else DAY
        first = _seconds(schedule.start_schedule)
        k = math.floor((start - first) / period)
        while first + k * period < end:
            origins.append(first + k * period)
            k += 1
    else:
        origins.append(_origin(profile, start, transaction, start))
    for origin in origins:
        yield origin
        for p in schedule.periods:
            yield origin + p.start
        if schedule.duration is not None:
            yield origin + schedule.duration


def _pick(candidates: list[tuple[Profile, Period]]) -> tuple[Profile, Period] | None:
    """Highest stack level; at a tie the EVSE's own profile, then the lower limit."""
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0].stack_level, c[0].evse_id != 0, -c[1].limit))


def _limit(profiles: list[Profile], at: float, evse_id: int, transaction: Transaction | None,
           window_start: float, unit: str, voltage: float,
           default_phases: int) -> tuple[float | None, int]:
    by_purpose: dict[str, list[tuple[Profile, Period]]] = {p: [] for p in PURPOSES}
    for profile in profiles:
        period = limit_at(profile, at, transaction=transaction, window_start=window_start)
        if period is not None:
            by_purpose[profile.purpose].append((profile, period))
    tx = _pick(by_purpose[TX]) or _pick(by_purpose[TX_DEFAULT])
    best: tuple[float, int] | None = None
    for chosen in (_pick(by_purpose[MAX]), _pick(by_purpose[EXTERNAL]), tx):
        if chosen is None:
            continue
        profile, period = chosen
        phases = period.number_phases or default_phases
        value = convert(period.limit, profile.schedule.unit, unit, phases, voltage)
        if best is None or value < best[0]:
            best = (value, phases)
    return (None, default_phases) if best is None else best


def composite_schedule(profiles: Iterable[Profile], *, evse_id: int, start: datetime.datetime,
                       duration: int, unit: str = "A", transaction: Transaction | None = None,
                       voltage: float = 230.0, default_phases: int = 3) -> list[CompositePeriod]:
    """The limit on ``evse_id`` over ``duration`` seconds from ``start``, as periods.

    ``transaction`` is the one running on the EVSE, if any; ``voltage`` and
    ``default_phases`` (a period without numberPhases) convert between A and W.
    EVSE 0 gets the station-wide limit: the maximum and external constraints.
    Changes inside a second take effect at the next whole second, so the periods
    start at whole seconds like the ones a CSMS sends.
    """
    if duration <= 0:
        return []
    if unit not in ("A", "W"):
        raise ValueError(f"unit must be 'A' or 'W', not {unit!r}")
    if transaction is not None and transaction.evse_id != evse_id:
        transaction = None
    relevant = [p for p in profiles if _applies(p, evse_id, transaction)]
    t0 = _seconds(start)
    end = t0 + duration
    offsets = {0}
    for profile in relevant:
        for moment in _changes(profile, transaction, t0, end):
            # The first whole second at or after the change: limit_at compares the same floats.
            offset = math.ceil(moment - t0)
            if 0 < offset < duration:
                offsets.add(offset)
    result: list[CompositePeriod] = []
    for offset in sorted(offsets):
        limit, phases = _limit(relevant, t0 + offset, evse_id, transaction, t0, unit, voltage,
                               default_phases)
        if result and result[-1].limit == limit and result[-1].number_phases == phases:
            continue
        result.append(CompositePeriod(offset, limit, phases))
    return result
