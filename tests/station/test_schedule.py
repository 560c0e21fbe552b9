"""The composite schedule against a plain per-second model of the rules, and worked examples."""
from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_sync.station.schedule import (
    DAY,
    EXTERNAL,
    MAX,
    TX,
    TX_DEFAULT,
    WEEK,
    CompositePeriod,
    Period,
    Profile,
    Schedule,
    Transaction,
    composite_schedule,
)

T0 = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)
VOLTAGE = 230.0


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


# -- the reference: every second on its own, straight from the rules --------------------------


def reference_period(p: Profile, moment: float, tx: Transaction | None, window_start: float) -> Period | None:
    if p.valid_from is not None and moment < p.valid_from.timestamp():
        return None
    if p.valid_to is not None and moment >= p.valid_to.timestamp():
        return None
    s = p.schedule
    if p.kind == "Recurring":
        step = WEEK if p.recurrency == "Weekly" else DAY
        origin = s.start_schedule.timestamp()  # type: ignore[union-attr]
        while origin > moment:
            origin -= step
        while origin + step <= moment:
            origin += step
    elif p.kind == "Absolute" and s.start_schedule is not None:
        origin = s.start_schedule.timestamp()
    else:
        origin = tx.start.timestamp() if tx is not None else window_start
    offset = moment - origin
    if offset < 0 or (s.duration is not None and offset >= s.duration):
        return None
    current = None
    for period in s.periods:
        if period.start <= offset:
            current = period
    return current


def reference(profiles: list[Profile], evse: int, start: float, duration: int, unit: str,
              tx: Transaction | None) -> list[tuple[float | None, int]]:
    out = []
    if tx is not None and tx.evse_id != evse:
        tx = None
    for second in range(duration):
        moment = start + second
        winners = {}
        for purpose in (MAX, TX_DEFAULT, TX, EXTERNAL):
            best = None
            for p in profiles:
                if p.purpose != purpose:
                    continue
                if purpose == MAX and p.evse_id != 0:
                    continue
                if purpose == TX and (evse == 0 or tx is None or p.evse_id != evse
                                      or p.transaction_id not in (None, tx.id)):
                    continue
                if purpose == TX_DEFAULT and (evse == 0 or p.evse_id not in (0, evse)):
                    continue
                if purpose == EXTERNAL and p.evse_id not in (0, evse):
                    continue
                period = reference_period(p, moment, tx, start)
                if period is None:
                    continue
                rank = (p.stack_level, p.evse_id != 0, -period.limit)
                if best is None or rank > best[0]:
                    best = (rank, p, period)
            if best is not None:
                winners[purpose] = best
        chosen = [winners[k] for k in (MAX, EXTERNAL) if k in winners]
        if TX in winners:
            chosen.append(winners[TX])
        elif TX_DEFAULT in winners:
            chosen.append(winners[TX_DEFAULT])
        values = []
        for _, p, period in chosen:
            phases = period.number_phases or 3
            value = period.limit
            if p.schedule.unit != unit:
                value = value * VOLTAGE * phases if unit == "W" else value / (VOLTAGE * phases)
            values.append((value, phases))
        out.append(min(values, key=lambda v: v[0]) if values else (None, 3))
    return out


def expand(periods: list[CompositePeriod], duration: int) -> list[tuple[float | None, int]]:
    out: list[tuple[float | None, int]] = []
    for i, period in enumerate(periods):
        end = periods[i + 1].start if i + 1 < len(periods) else duration
        out += [(period.limit, period.number_phases)] * (end - period.start)
    return out


def same(got: list[tuple[float | None, int]], want: list[tuple[float | None, int]]) -> bool:
    if len(got) != len(want):
        return False
    for (a, pa), (b, pb) in zip(got, want, strict=True):
        if (a is None) != (b is None) or pa != pb:
            return False
        if a is not None and b is not None and abs(a - b) > 1e-6 * max(1.0, abs(b)):
            return False
    return True


# -- strategies -------------------------------------------------------------------------------

WINDOW = 900


@st.composite
def schedules(draw: st.DrawFn, kind: str) -> Schedule:
    starts = sorted(draw(st.sets(st.integers(1, 700), max_size=4)))
    periods = tuple(Period(start, draw(st.integers(0, 640)) / 10, draw(st.sampled_from([None, 1, 3])))
                    for start in [0, *starts])
    start_schedule = None
    if kind != "Relative":
        start_schedule = at(draw(st.integers(-2 * DAY, 600)) + draw(st.sampled_from([0.0, 0.25])))
    if kind == "Absolute" and draw(st.booleans()):
        start_schedule = None
    return Schedule(unit=draw(st.sampled_from(["A", "W"])), periods=periods,
                    start_schedule=start_schedule,
                    duration=draw(st.one_of(st.none(), st.integers(1, 1200))))


@st.composite
def profiles(draw: st.DrawFn, index: int) -> Profile:
    purpose = draw(st.sampled_from([MAX, TX_DEFAULT, TX, EXTERNAL]))
    kind = draw(st.sampled_from(["Absolute", "Relative", "Recurring"]))
    schedule = draw(schedules(kind))
    if schedule.unit == "W":
        schedule = Schedule(unit="W", periods=tuple(Period(p.start, p.limit * 500, p.number_phases)
                                                    for p in schedule.periods),
                            start_schedule=schedule.start_schedule, duration=schedule.duration)
    valid_from = draw(st.one_of(st.none(), st.integers(-100, 800).map(at)))
    valid_to = draw(st.one_of(st.none(), st.integers(0, 1000).map(at)))
    return Profile(id=index, stack_level=draw(st.integers(0, 3)), purpose=purpose, kind=kind,
                   schedule=schedule, evse_id=0 if purpose == MAX else draw(st.integers(0, 2)),
                   recurrency=draw(st.sampled_from(["Daily", "Weekly"])) if kind == "Recurring" else None,
                   valid_from=valid_from, valid_to=valid_to,
                   transaction_id=draw(st.sampled_from([None, "tx-1", "tx-2"])) if purpose == TX else None)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Profile], int, int, str, Transaction | None]:
    count = draw(st.integers(0, 5))
    found = [draw(profiles(i)) for i in range(count)]
    tx = draw(st.one_of(st.none(), st.builds(
        Transaction, id=st.sampled_from(["tx-1", "tx-2"]), evse_id=st.integers(1, 2),
        start=st.integers(-300, 300).map(at))))
    return found, draw(st.integers(0, 2)), draw(st.integers(1, WINDOW)), draw(st.sampled_from(["A", "W"])), tx


@settings(max_examples=500, deadline=None)
@given(cases(), st.sampled_from([0.0, 0.5]))
def test_the_composite_schedule_matches_the_per_second_model(case, shift) -> None:  # type: ignore[no-untyped-def]
    found, evse, duration, unit, tx = case
    start = T0 + datetime.timedelta(seconds=shift)
    got = composite_schedule(found, evse_id=evse, start=start, duration=duration, unit=unit,
                             transaction=tx, voltage=VOLTAGE)
    want = reference(found, evse, start.timestamp(), duration, unit, tx)
    assert got[0].start == 0
    assert all(a.start < b.start for a, b in zip(got, got[1:], strict=False))
    assert all((a.limit, a.number_phases) != (b.limit, b.number_phases) for a, b in zip(got, got[1:], strict=False))
    assert same(expand(got, duration), want)


# -- worked examples --------------------------------------------------------------------------


def absolute(pid: int, level: int, periods: list[tuple[int, float]], duration: int | None,
             purpose: str = TX_DEFAULT, evse: int = 1, unit: str = "A", phases: int | None = None) -> Profile:
    return Profile(id=pid, stack_level=level, purpose=purpose, kind="Absolute", evse_id=evse,
                   schedule=Schedule(unit=unit, periods=tuple(Period(s, lim, phases) for s, lim in periods),
                                     start_schedule=T0, duration=duration))


def test_stacking_two_tx_default_profiles() -> None:
    """The profiles of OCTT TC_072_CS (OCPP 1.6): stack level 0 with 6 / 8 / 10 A from
    0 / 100 / 200 s for 400 s, stack level 1 for its first 150 s. The higher level wins
    while it runs, the lower one takes over where it ends."""
    low = absolute(1, 0, [(0, 6), (100, 8), (200, 10)], 400)
    high = absolute(2, 1, [(0, 10), (100, 9)], 150)
    got = composite_schedule([low, high], evse_id=1, start=T0, duration=400)
    assert [(p.start, p.limit) for p in got] == [(0, 10), (100, 9), (150, 8), (200, 10)]


def test_tx_profile_overrides_tx_default_and_the_maximum_caps_both() -> None:
    """OCPP 1.6 section 3.13.3 / 2.0.1 K: TxProfile replaces TxDefaultProfile; the station
    maximum bounds the result."""
    tx = Transaction("tx-1", 1, T0)
    default = absolute(1, 0, [(0, 32)], None)
    tx_profile = Profile(id=2, stack_level=0, purpose=TX, kind="Relative", evse_id=1,
                         schedule=Schedule("A", (Period(0, 20), Period(300, 6))), transaction_id="tx-1")
    cap = absolute(3, 0, [(0, 16)], None, purpose=MAX, evse=0)
    got = composite_schedule([default, tx_profile, cap], evse_id=1, start=T0, duration=600, transaction=tx)
    assert [(p.start, p.limit) for p in got] == [(0, 16), (300, 6)]
    without_tx = composite_schedule([default, tx_profile, cap], evse_id=1, start=T0, duration=600)
    assert [(p.start, p.limit) for p in without_tx] == [(0, 16)]


def test_units_convert_with_the_phases_and_the_voltage() -> None:
    """11 kW on three phases at 230 V is 15.94 A per phase; 16 A on one phase is 3680 W."""
    power = absolute(1, 0, [(0, 11_000)], None, unit="W", phases=3)
    [amps] = composite_schedule([power], evse_id=1, start=T0, duration=60, unit="A")
    assert amps.limit == pytest.approx(11_000 / (230 * 3)) and amps.number_phases == 3
    current = absolute(1, 0, [(0, 16)], None, phases=1)
    [watts] = composite_schedule([current], evse_id=1, start=T0, duration=60, unit="W")
    assert watts.limit == pytest.approx(3680) and watts.number_phases == 1
    [at_120] = composite_schedule([current], evse_id=1, start=T0, duration=60, unit="W", voltage=120)
    assert at_120.limit == pytest.approx(1920)


def test_a_daily_profile_repeats_at_the_same_time_of_day() -> None:
    night = Profile(id=1, stack_level=0, purpose=TX_DEFAULT, kind="Recurring", recurrency="Daily", evse_id=0,
                    schedule=Schedule("A", (Period(0, 32), Period(8 * 3600, 10)),
                                      start_schedule=T0 - datetime.timedelta(days=3, hours=8)))
    got = composite_schedule([night], evse_id=1, start=T0, duration=DAY)
    # T0 is 08:00; the schedule starts at 00:00: 10 A until midnight, then 32 A for 8 h.
    assert [(p.start, p.limit) for p in got] == [(0, 10), (16 * 3600, 32)]


def test_evse_zero_reports_the_station_limit_only() -> None:
    cap = absolute(1, 0, [(0, 40)], None, purpose=MAX, evse=0)
    default = absolute(2, 0, [(0, 10)], None, evse=0)
    assert [(p.start, p.limit) for p in composite_schedule([cap, default], evse_id=0, start=T0,
                                                           duration=60)] == [(0, 40)]


def test_no_profile_leaves_the_time_unlimited() -> None:
    short = absolute(1, 0, [(0, 10)], 30)
    got = composite_schedule([short], evse_id=1, start=T0, duration=60)
    assert [(p.start, p.limit) for p in got] == [(0, 10), (30, None)]
    assert composite_schedule([], evse_id=1, start=T0, duration=0) == []
    with pytest.raises(ValueError):
        composite_schedule([], evse_id=1, start=T0, duration=5, unit="kW")
