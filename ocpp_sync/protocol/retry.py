"""The two waiting schedules OCPP prescribes for a charge point, computed, not slept.

Reconnecting (OCPP 2.0.1 configuration keys ``RetryBackOffWaitMinimum``,
``RetryBackOffRandomRange``, ``RetryBackOffRepeatTimes``): the first attempt
waits the minimum plus a random part; each later attempt doubles the previous
fixed part, ``repeat_times`` times at most, and adds a fresh random part; after
that the last fixed part is kept for every further attempt. The random part
spreads a fleet of stations that lost the same CSMS at once, so they do not all
come back in the same second.

Transaction messages (``TransactionMessageAttempts``,
``TransactionMessageRetryInterval``): a message the CSMS failed to process is
sent again after ``interval`` times the number of attempts so far, until
``attempts`` sends in all have been made.

Keepalive (``ping_interval``, ``pong_timeout``): a peer that sent nothing for
``ping_interval`` is pinged; one that still sends nothing ``pong_timeout`` later
is dead, so a silent peer is found within the sum of the two.

All are pure values with an injectable random source or clock, so the schedule
itself is what tests check; the caller does the waiting (on an Event, or in the
reader's receive timeout, so that close() interrupts it).
"""
from __future__ import annotations

import math
import random as _random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["BackOff", "TransactionRetry", "Keepalive", "MAX_DELAY"]

# A fixed part beyond one day is a configuration mistake rather than a wish;
# capping it also keeps doubling from overflowing to infinity.
MAX_DELAY = 86400.0

RandomSource = Callable[[], float]


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)


def _check_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


@dataclass(frozen=True)
class BackOff:
    """The reconnect schedule; ``attempt`` 0 is the wait before the first reconnect."""

    wait_minimum: float = 5.0
    random_range: float = 5.0
    repeat_times: int = 5

    def __post_init__(self) -> None:
        _check_seconds("wait_minimum", self.wait_minimum)
        _check_seconds("random_range", self.random_range)
        _check_count("repeat_times", self.repeat_times, 0)

    def fixed(self, attempt: int) -> float:
        """The deterministic part of the wait before reconnect ``attempt`` (0-based)."""
        _check_count("attempt", attempt, 0)
        doublings = min(attempt, self.repeat_times)
        try:
            return min(math.ldexp(self.wait_minimum, doublings), MAX_DELAY)
        except OverflowError:
            return MAX_DELAY

    def delay(self, attempt: int, random: RandomSource = _random.random) -> float:
        """The full wait before reconnect ``attempt``: fixed part plus ``random() * random_range``.

        ``random`` returns a float in [0, 1]; values outside are clamped, so a
        faulty source can never shorten the minimum wait.
        """
        fraction = min(1.0, max(0.0, float(random())))
        return self.fixed(attempt) + fraction * self.random_range

    def delays(self, random: RandomSource = _random.random) -> Iterator[float]:
        """The endless sequence of waits; start a new one after a successful connect."""
        attempt = 0
        while True:
            yield self.delay(attempt, random)
            if attempt <= self.repeat_times:
                attempt += 1


@dataclass(frozen=True)
class TransactionRetry:
    """How often, and how far apart, a transaction message is sent before it is given up."""

    attempts: int = 3
    interval: float = 60.0

    def __post_init__(self) -> None:
        _check_count("attempts", self.attempts, 1)
        _check_seconds("interval", self.interval)

    def delay_after(self, attempts_made: int) -> float | None:
        """The wait before the next send after ``attempts_made`` failed sends; None: give up."""
        _check_count("attempts_made", attempts_made, 1)
        if attempts_made >= self.attempts:
            return None
        return self.interval * attempts_made

    def schedule(self) -> list[float]:
        """Every wait between sends, in order (``attempts - 1`` of them)."""
        return [self.interval * n for n in range(1, self.attempts)]


class Keepalive:
    """When to ping a quiet peer and when to give it up, for one connection.

    Owned by the connection's reader thread: it calls :meth:`seen` for every
    frame that arrives (data, ping, pong, close: all prove the peer is there),
    waits no longer than :meth:`deadline`, and acts on :meth:`check`.
    """

    PING = "ping"
    DEAD = "dead"

    def __init__(self, ping_interval: float | None, pong_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ping_interval is not None:
            _check_seconds("ping_interval", ping_interval)
        _check_seconds("pong_timeout", pong_timeout)
        self.ping_interval = ping_interval or None  # 0 disables, as OCPP's WebSocketPingInterval does
        self.pong_timeout = float(pong_timeout)
        self._clock = clock
        self._last_seen = clock()
        self._ping_sent: float | None = None

    @property
    def enabled(self) -> bool:
        return self.ping_interval is not None

    def seen(self) -> None:
        """The peer sent something just now."""
        self._last_seen = self._clock()
        self._ping_sent = None

    def deadline(self) -> float | None:
        """The clock time of the next ping or verdict; None when disabled."""
        if self.ping_interval is None:
            return None
        if self._ping_sent is not None:
            return self._ping_sent + self.pong_timeout
        return self._last_seen + self.ping_interval

    def check(self) -> str | None:
        """PING: send a ping now (recorded as sent); DEAD: close the connection; None: nothing due."""
        deadline = self.deadline()
        now = self._clock()
        if deadline is None or now < deadline:
            return None
        if self._ping_sent is None:
            self._ping_sent = now
            return self.PING
        return self.DEAD
