"""The one thread of the stack: it sends the reports that follow an answer.

A GetBaseReport or GetChargingProfiles handler must answer before the
NotifyReport / ReportChargingProfiles messages go out, and a handler that sent
them itself would hold the connection's worker for the whole series. So the
handlers queue a job here and return; the thread sends the job's messages with
the charge point's blocking ``send``, one job at a time, in the order queued.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Reporter"]

log = logging.getLogger("ocpp_sync.station.reporter")

Job = Callable[[], None]


class Reporter:
    """Runs queued jobs in a named daemon thread, started at the first job; :meth:`stop` ends it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, job: Job) -> None:
        """Queue ``job``; dropped (and logged) once the reporter is stopped."""
        with self._lock:
            if self._stopped:
                log.warning("%s: stopped, a report is not sent", self.name)
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # one failed report must not end the others
                log.exception("%s: a report failed", self.name)

    def join_idle(self, timeout: float) -> bool:
        """Wait until every queued job ran (tests, shutdown); False on timeout."""
        done = threading.Event()
        self.submit(done.set)
        return done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Run what is queued, then end the thread, waiting at most ``timeout`` s for it."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            self._jobs.put(None)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: a report is still being sent after %.1f s", self.name, timeout)
