"""The parent of a fleet run: starts the worker processes, adds up their figures, stops them.

:func:`run_fleet` returns the :class:`Outcome` whatever ends the run: the
duration, Ctrl-C (``interrupted``), or a stop event set by the caller. The
workers are always stopped: told first, joined with a deadline, terminated
after it, killed if even that fails, so nothing of a run is left running.
"""
from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.fleet.figures import Figures, Histogram
from ocpp_sync.fleet.plan import FleetOptions, StationPlan, plan_fleet, share_out
from ocpp_sync.fleet.worker import worker_main
from ocpp_sync.sim import Step, check_connectors, load_scenario

__all__ = ["run_fleet", "Outcome", "Point", "Progress"]

log = logging.getLogger("ocpp_sync.fleet.run")

#: Seconds the workers may take to start (a spawned interpreter imports the library first).
START_DEADLINE = 60.0
#: Seconds the workers get to stop by themselves before they are terminated.
STOP_DEADLINE = 15.0
#: The most timeline points kept: past it, neighbours are merged two by two, so a run of
#: days keeps a plot's worth of points (at a coarser resolution) in bounded memory.
MAX_POINTS = 4000


@attrs.frozen
class Point:
    """One tick of the timeline: seconds since the start, calls/s, p99 latency, stations up."""

    seconds: float
    calls_per_second: float
    p99: float | None
    connected: int


@attrs.frozen
class Progress:
    """What the live display shows at a tick."""

    seconds: float
    stations: int
    connected: int
    calls: int
    calls_per_second: float
    errors: int
    refused: int
    reconnects: int


@attrs.define
class Outcome:
    """Everything a run measured, for the report."""

    options: FleetOptions
    plans: list[StationPlan]
    procs: int
    figures: Figures
    timeline: list[Point]
    cpu: dict[str, float]
    seconds: float
    interrupted: bool
    peak_connected: int


class _Tally:
    """The parent's running sums: the fleet's figures, each worker's latest gauges, the ticks."""

    def __init__(self, stations: int, procs: int) -> None:
        self.stations = stations
        self.figures = Figures()
        self.connected = [0] * procs
        self.cpu = [0.0] * procs
        self.timeline: list[Point] = []
        self.peak_connected = 0
        self._tick_calls = 0
        self._tick_latency = Histogram()
        self._tick_started = 0.0

    def add(self, number: int, values: dict[str, Any]) -> None:
        figures = values["figures"]
        self.figures.add(figures)
        self._tick_calls += sum(figures["calls"].values())
        for buckets in figures["latency"].values():
            self._tick_latency.add(Histogram(buckets))
        self.connected[number] = values["connected"]
        self.cpu[number] = values["cpu"]
        self.peak_connected = max(self.peak_connected, sum(self.connected))

    def tick(self, seconds: float) -> Progress:
        """Close the tick that ends ``seconds`` into the run: a timeline point and the display's figures."""
        span = max(1e-6, seconds - self._tick_started)
        rate = self._tick_calls / span
        self.timeline.append(Point(round(seconds, 3), rate, self._tick_latency.percentile(99),
                                   sum(self.connected)))
        if len(self.timeline) > MAX_POINTS:
            self.timeline = halve(self.timeline)
        self._tick_calls, self._tick_latency, self._tick_started = 0, Histogram(), seconds
        figures = self.figures
        return Progress(seconds, self.stations, sum(self.connected), sum(figures.calls.values()),
                        rate, sum(figures.errors.values()), figures.events["refused"],
                        figures.events["reconnects"])


def halve(timeline: list[Point]) -> list[Point]:
    """Merge neighbouring points two by two: the later time, the mean rate, the worse p99."""
    merged = []
    for first, second in zip(timeline[::2], timeline[1::2], strict=False):
        p99s = [p for p in (first.p99, second.p99) if p is not None]
        merged.append(Point(second.seconds, (first.calls_per_second + second.calls_per_second) / 2,
                            max(p99s) if p99s else None, second.connected))
    if len(timeline) % 2:
        merged.append(timeline[-1])
    return merged


def _scenarios(options: FleetOptions) -> list[list[Step]]:
    """Every scenario file read and checked before a process starts (ScenarioError if bad)."""
    scenarios = [load_scenario(path) for path in options.scenarios]
    for steps in scenarios:
        check_connectors(steps, options.connectors)
    return scenarios


def run_fleet(options: FleetOptions, *, progress: Callable[[Progress], None] | None = None,
              tick: float = 1.0, stop: threading.Event | None = None,
              log_level: int = logging.ERROR) -> Outcome:
    """Run the fleet until ``options.duration`` is over, Ctrl-C, or ``stop`` is set.

    ``progress`` hears the running figures every ``tick`` seconds (the timeline's
    resolution too); ``log_level`` is the workers' logging level.
    """
    plans = plan_fleet(options)
    scenarios = _scenarios(options)
    procs = max(1, min(options.procs, len(plans)))
    context = multiprocessing.get_context("spawn")
    inbox: Any = context.Queue()
    go, halt, start_at = context.Event(), context.Event(), context.Value("d", 0.0)
    workers = [context.Process(target=worker_main, name=f"ocpp-fleet-worker-{number}", daemon=True,
                               args=(number, options, share, scenarios, inbox, go, start_at, halt,
                                     log_level))
               for number, share in enumerate(share_out(plans, procs))]
    tally = _Tally(len(plans), procs)
    stop = stop or threading.Event()
    interrupted = False
    started = time.monotonic()
    done: set[int] = set()
    try:
        for worker in workers:
            worker.start()
        _wait_ready(inbox, workers, done)
        started = time.monotonic()
        start_at.value = started
        go.set()
        next_tick = started + tick
        while not stop.is_set():
            now = time.monotonic()
            if options.duration is not None and now - started >= options.duration:
                break
            if now >= next_tick:
                check_alive(workers, done)
                shown = tally.tick(now - started)
                next_tick += tick
                if progress is not None:
                    progress(shown)
            _receive(inbox, tally, done, timeout=min(0.1, max(0.0, next_tick - now)))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        seconds = time.monotonic() - started
        _shutdown(inbox, workers, halt, tally, done)
    # The last figures came in while the workers stopped: their tick spans that time, and at
    # least one report interval, so a quick stop does not divide them by next to nothing.
    last = tally.timeline[-1].seconds if tally.timeline else 0.0
    tally.tick(max(time.monotonic() - started, last + options.report_interval))
    cpu = {f"worker {number}": round(value, 3) for number, value in enumerate(tally.cpu)}
    cpu["parent"] = round(time.process_time(), 3)
    return Outcome(options, plans, procs, tally.figures, tally.timeline, cpu, seconds, interrupted,
                   tally.peak_connected)


def check_alive(workers: list[Any], done: set[int]) -> None:
    """A worker that ended before it was told to took its stations with it: the run is void."""
    for number, worker in enumerate(workers):
        if worker.exitcode is not None and number not in done:
            raise OCPPError(f"fleet worker {number} ended during the run (exit code {worker.exitcode})")


def _receive(inbox: Any, tally: _Tally, done: set[int], timeout: float) -> None:
    """Take one message from the workers (waiting up to ``timeout``) and everything queued behind it."""
    block = True
    while True:
        try:
            kind, number, values = inbox.get(block, timeout) if block else inbox.get_nowait()
        except queue.Empty:
            return
        block = False
        if kind == "figures":
            tally.add(number, values)
        elif kind == "done":
            done.add(number)
        elif kind == "failed":
            raise OCPPError(f"fleet worker {number} could not start: {values['error']}")


def _wait_ready(inbox: Any, workers: list[Any], done: set[int]) -> None:
    ready: set[int] = set()
    deadline = time.monotonic() + START_DEADLINE
    while len(ready) < len(workers):
        if time.monotonic() > deadline:
            raise OCPPError(f"only {len(ready)} of {len(workers)} fleet workers started "
                            f"within {START_DEADLINE:g} s")
        dead = [worker.name for worker in workers if worker.exitcode is not None]
        if dead:
            raise OCPPError(f"fleet worker(s) {', '.join(dead)} ended before the run began")
        try:
            kind, number, values = inbox.get(True, 0.2)
        except queue.Empty:
            continue
        if kind == "failed":
            raise OCPPError(f"fleet worker {number} could not start: {values['error']}")
        if kind == "ready":
            ready.add(number)


def _shutdown(inbox: Any, workers: list[Any], halt: Any, tally: _Tally, done: set[int]) -> None:
    """Tell every worker to stop, take their last figures, and make sure each process is gone."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
    try:
        halt.set()
        deadline = time.monotonic() + STOP_DEADLINE
        started = [number for number, worker in enumerate(workers) if worker.pid is not None]
        while any(number not in done and workers[number].exitcode is None for number in started):
            if time.monotonic() > deadline:
                break
            try:
                _receive(inbox, tally, done, timeout=0.1)
            except OCPPError as exc:
                log.warning("%s", exc)
        for worker in workers:
            if worker.pid is None:
                continue
            worker.join(max(0.1, deadline - time.monotonic()))
            if worker.exitcode is None:
                log.warning("%s did not stop within %g s; terminating it", worker.name, STOP_DEADLINE)
                worker.terminate()
                worker.join(2.0)
            if worker.exitcode is None:
                worker.kill()
                worker.join(2.0)
    finally:
        inbox.close()
        inbox.cancel_join_thread()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
