"""A fleet worker process: its share of the stations, each driven by a thread of its own.

The parent starts it with ``spawn``; it says ``ready`` once its stations exist,
waits for the parent's go, then sends what it counted every
``report_interval`` seconds until told to stop. Ctrl-C is the parent's
business: a worker ignores SIGINT and ends on the stop event, its stations
closed and their threads joined with a deadline.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ocpp_sync.fleet.figures import Figures
from ocpp_sync.fleet.plan import FleetOptions, StationPlan
from ocpp_sync.fleet.station import STOP, FleetStation
from ocpp_sync.security import client_ssl_context
from ocpp_sync.sim import Step

__all__ = ["worker_main", "Worker"]

log = logging.getLogger("ocpp_sync.fleet.worker")

#: Seconds the stations' drivers get to finish the call they are in when the run ends.
FINISH_GRACE = 2.0
#: Seconds the worker then gives its stations to close and their threads to end.
CLOSE_DEADLINE = 5.0
#: Stations closed at once when the run ends.
CLOSERS = 16


class Worker:
    """The stations of one process and the loop that reports their figures to the parent."""

    def __init__(self, number: int, options: FleetOptions, plans: list[StationPlan],
                 scenarios: list[list[Step]], outbox: Any) -> None:
        """Worker ``number`` plays ``plans``; ``scenarios`` are the scenario files' steps in
        the order of ``options.scenarios``; figures go to ``outbox`` (a multiprocessing queue)."""
        self.number = number
        self.options = options
        self.outbox = outbox
        self.figures = Figures()
        context = client_ssl_context(cafile=options.cafile) if options.cafile else None
        self.stations = [
            FleetStation(plan, options, self.figures, ssl_context=context,
                         scenario=None if plan.scenario is None else scenarios[plan.scenario])
            for plan in plans]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def send(self, kind: str, **values: Any) -> None:
        self.outbox.put((kind, self.number, values))

    def report(self) -> None:
        """What was counted since the last report, the stations connected now, the CPU so far."""
        self.send("figures", figures=self.figures.take(),
                  connected=sum(station.cp.connected for station in self.stations),
                  cpu=time.process_time())

    def run(self, go: Any, start_at: Any, stop: Any) -> None:
        """Wait for ``go``, drive the stations from ``start_at`` (monotonic), report until ``stop``."""
        self.send("ready", stations=len(self.stations))
        while not go.wait(0.1):
            if stop.is_set() or self._orphaned():
                return
        start = float(start_at.value)
        for station in self.stations:
            thread = threading.Thread(target=station.drive, args=(self._stop, start), daemon=True,
                                      name=f"ocpp-fleet-{station.id}")
            thread.start()
            self._threads.append(thread)
        try:
            while not stop.wait(self.options.report_interval) and not self._orphaned():
                self.report()
        finally:
            self.finish()

    def _orphaned(self) -> bool:
        """The parent is gone (killed, say): nobody will stop us or read our figures, so we end."""
        parent = multiprocessing.parent_process()
        if parent is None or parent.is_alive():
            return False
        log.warning("worker %d: the fleet's parent process is gone; stopping", self.number)
        self.outbox.cancel_join_thread()  # exiting must not wait for a reader that will never come
        return True

    def finish(self) -> None:
        """Wake every station, let calls in flight be answered, close them, report one last time.

        A driver between calls returns at once on STOP; one waiting for an answer gets
        ``FINISH_GRACE`` seconds before its connection is closed under it, so a run's
        last counts agree with what the CSMS saw.
        """
        self._stop.set()
        for station in self.stations:
            station.commands.put(STOP)
        grace = time.monotonic() + FINISH_GRACE
        for thread in self._threads:
            thread.join(max(0.0, grace - time.monotonic()))
        deadline = time.monotonic() + CLOSE_DEADLINE
        with ThreadPoolExecutor(CLOSERS, thread_name_prefix="ocpp-fleet-close") as pool:
            list(pool.map(lambda station: station.close(0.0), self.stations))
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = [thread.name for thread in self._threads if thread.is_alive()]
        if left:
            log.warning("worker %d: %d station thread(s) still running at exit", self.number, len(left))
        self.report()
        self.send("done")


def worker_main(number: int, options: FleetOptions, plans: list[StationPlan],
                scenarios: list[list[Step]], outbox: Any, go: Any, start_at: Any, stop: Any,
                log_level: int) -> None:
    """The worker process's entry point (a module-level function, as ``spawn`` needs)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=f"worker {number}: %(levelname)s %(name)s: %(message)s")
    try:
        worker = Worker(number, options, plans, scenarios, outbox)
    except (OSError, ValueError) as exc:  # e.g. an unreadable CA file: the parent says why
        outbox.put(("failed", number, {"error": f"{type(exc).__name__}: {exc}"}))
        return
    worker.run(go, start_at, stop)
