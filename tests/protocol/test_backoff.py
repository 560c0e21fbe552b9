"""The reconnect and transaction-retry schedules, checked as computed values."""
from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpp_sync.protocol.retry import MAX_DELAY, BackOff, Keepalive, TransactionRetry


def take(backoff: BackOff, n: int, rand=lambda: 0.0) -> list:
    return list(itertools.islice(backoff.delays(rand), n))


def test_doubles_then_keeps_the_last_delay():
    assert take(BackOff(wait_minimum=10, random_range=0, repeat_times=3), 7) == [10, 20, 40, 80, 80, 80, 80]


def test_zero_repeat_times_never_doubles():
    assert take(BackOff(wait_minimum=7, random_range=0, repeat_times=0), 4) == [7, 7, 7, 7]


def test_random_part_is_added_fresh_to_each_attempt_and_not_doubled():
    fractions = iter([0.5, 0.0, 1.0, 0.25, 0.75])
    got = take(BackOff(wait_minimum=2, random_range=4, repeat_times=2), 5, lambda: next(fractions))
    assert got == [2 + 2.0, 4 + 0.0, 8 + 4.0, 8 + 1.0, 8 + 3.0]


def test_seeded_random_source_gives_a_reproducible_schedule():
    backoff = BackOff(wait_minimum=1, random_range=3, repeat_times=4)
    first = take(backoff, 10, random.Random(42).random)
    assert first == take(backoff, 10, random.Random(42).random)
    assert first != take(backoff, 10, random.Random(43).random)


def test_a_faulty_random_source_cannot_shorten_or_stretch_the_wait():
    backoff = BackOff(wait_minimum=5, random_range=1, repeat_times=1)
    assert backoff.delay(0, lambda: -3.0) == 5
    assert backoff.delay(0, lambda: 7.0) == 6


def test_a_new_generator_starts_from_the_minimum_again():
    backoff = BackOff(wait_minimum=1, random_range=0, repeat_times=5)
    assert take(backoff, 3) == [1, 2, 4]
    assert take(backoff, 1) == [1]


def test_huge_doubling_is_capped_not_overflowing():
    backoff = BackOff(wait_minimum=1, random_range=0, repeat_times=5000)
    assert backoff.fixed(4000) == MAX_DELAY
    assert backoff.fixed(3) == 8


@pytest.mark.parametrize("kwargs", [
    {"wait_minimum": -1}, {"random_range": float("nan")}, {"wait_minimum": float("inf")},
    {"repeat_times": -1}, {"repeat_times": 1.5}, {"repeat_times": True}, {"wait_minimum": "5"},
])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        BackOff(**kwargs)


seconds = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(wait_minimum=seconds, random_range=seconds, repeat_times=st.integers(0, 40),
       fractions=st.lists(st.floats(0, 1), min_size=1, max_size=60))
def test_schedule_properties(wait_minimum, random_range, repeat_times, fractions):
    backoff = BackOff(wait_minimum=wait_minimum, random_range=random_range, repeat_times=repeat_times)
    source = iter(fractions)
    delays = take(backoff, len(fractions), lambda: next(source))
    for attempt, (delay, fraction) in enumerate(zip(delays, fractions, strict=True)):
        fixed = min(wait_minimum * 2 ** min(attempt, repeat_times), MAX_DELAY)
        assert delay == pytest.approx(fixed + fraction * random_range)
        assert fixed <= delay <= fixed + random_range
        assert delay >= wait_minimum
    fixed_parts = [backoff.fixed(a) for a in range(len(fractions))]
    assert fixed_parts == sorted(fixed_parts)
    assert all(part == fixed_parts[min(repeat_times, len(fixed_parts) - 1)]
               for part in fixed_parts[repeat_times:])


def test_transaction_retry_waits_interval_times_attempts_made():
    retry = TransactionRetry(attempts=4, interval=30)
    assert retry.schedule() == [30, 60, 90]
    assert [retry.delay_after(n) for n in (1, 2, 3, 4, 5)] == [30, 60, 90, None, None]


def test_a_single_attempt_is_never_retried():
    retry = TransactionRetry(attempts=1, interval=10)
    assert retry.schedule() == []
    assert retry.delay_after(1) is None


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"interval": -1}, {"attempts": 2.0}])
def test_bad_retry_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        TransactionRetry(**kwargs)


@given(attempts=st.integers(1, 50), interval=seconds)
def test_retry_schedule_properties(attempts, interval):
    retry = TransactionRetry(attempts=attempts, interval=interval)
    schedule = retry.schedule()
    assert len(schedule) == attempts - 1
    assert schedule == [retry.delay_after(n) for n in range(1, attempts)]
    assert retry.delay_after(attempts) is None
    assert schedule == sorted(schedule)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keepalive_pings_a_quiet_peer_then_declares_it_dead():
    clock = Clock()
    keepalive = Keepalive(ping_interval=30, pong_timeout=10, clock=clock)
    assert keepalive.deadline() == 1030 and keepalive.check() is None
    clock.now = 1029.9
    assert keepalive.check() is None
    clock.now = 1030
    assert keepalive.check() == Keepalive.PING
    assert keepalive.deadline() == 1040
    clock.now = 1039.9
    assert keepalive.check() is None
    clock.now = 1040
    assert keepalive.check() == Keepalive.DEAD


def test_keepalive_any_frame_restarts_the_interval():
    clock = Clock()
    keepalive = Keepalive(ping_interval=30, pong_timeout=10, clock=clock)
    clock.now = 1020
    keepalive.seen()
    clock.now = 1045
    assert keepalive.check() is None and keepalive.deadline() == 1050
    clock.now = 1050
    assert keepalive.check() == Keepalive.PING
    clock.now = 1055
    keepalive.seen()  # the pong
    assert keepalive.deadline() == 1085
    clock.now = 1090
    assert keepalive.check() == Keepalive.PING  # late, but it is a new ping, not a verdict


@pytest.mark.parametrize("interval", [None, 0])
def test_keepalive_disabled(interval):
    clock = Clock()
    keepalive = Keepalive(ping_interval=interval, pong_timeout=10, clock=clock)
    clock.now = 1e9
    assert not keepalive.enabled and keepalive.deadline() is None and keepalive.check() is None


@given(interval=st.floats(0.001, 1e4), timeout=st.floats(0, 1e4), quiet_from=st.floats(0, 1e4))
def test_a_silent_peer_is_dead_within_interval_plus_timeout(interval, timeout, quiet_from):
    clock = Clock()
    keepalive = Keepalive(ping_interval=interval, pong_timeout=timeout, clock=clock)
    clock.now += quiet_from
    keepalive.seen()  # last sign of life
    silent_since = clock.now
    verdicts = []
    for _ in range(4):  # a reader that acts exactly at each deadline
        clock.now = max(clock.now, keepalive.deadline())
        verdicts.append(keepalive.check())
        if verdicts[-1] == Keepalive.DEAD:
            break
    assert verdicts == [Keepalive.PING, Keepalive.DEAD]
    assert clock.now - silent_since <= interval + timeout + 1e-6 * (interval + timeout + silent_since)


def test_bad_keepalive_parameters_are_refused():
    with pytest.raises(ValueError):
        Keepalive(ping_interval=-1, pong_timeout=1)
    with pytest.raises(ValueError):
        Keepalive(ping_interval=1, pong_timeout=float("nan"))
