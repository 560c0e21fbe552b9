"""One station of the fleet: the simulator of ``ocpp-sync station``, timed and counted.

:class:`FleetStation` is a :class:`~ocpp_sync.sim.StationSimulator` whose every
call lands in the worker's :class:`~ocpp_sync.fleet.figures.Figures`; its
:meth:`~FleetStation.drive` plays the station's part of the plan in the thread
the worker gives it, and returns when the worker posts :data:`STOP`.
"""
from __future__ import annotations

import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.chargepoint.outbox import QueuedCall
from ocpp_sync.errors import CallError, HandshakeError, OCPPError
from ocpp_sync.fleet.figures import Figures
from ocpp_sync.fleet.plan import FleetOptions, StationPlan
from ocpp_sync.protocol.retry import BackOff
from ocpp_sync.protocol.versions import message_info
from ocpp_sync.sim import CSMS, Command, StationSimulator, Step, run_scenario

__all__ = ["FleetStation", "STOP"]

log = logging.getLogger("ocpp_sync.fleet.station")

#: Posted to every station's command queue when the run ends: wakes its driver at once.
STOP = Command("fleet-stop")
#: Failures a station's driver rides out: the call is counted, the plan goes on.
CALL_FAILURES = (OCPPError, ConnectionError, TimeoutError)


class FleetStation(StationSimulator):
    """A simulated station that counts every call and plays its :class:`StationPlan`."""

    def __init__(self, plan: StationPlan, options: FleetOptions, figures: Figures, *,
                 ssl_context: ssl.SSLContext | None = None,
                 scenario: list[Step] | None = None) -> None:
        """``plan`` is this station's part, ``options`` the run's; calls are counted in
        ``figures``; ``ssl_context`` verifies a ``wss://`` CSMS; ``scenario`` is the
        scenario file's steps when the plan says to play one."""
        password = None if options.password is None else options.password.replace("{id}", plan.id)
        super().__init__(options.url, plan.id, plan.version, timeout=options.timeout,
                         password=password, reconnect=True, ssl_context=ssl_context,
                         connectors=options.connectors,
                         meter_interval=options.meter_interval,
                         sample_seconds=max(1, round(options.meter_interval)),
                         backoff=BackOff(options.reconnect_wait, options.reconnect_wait))
        self.plan = plan
        self.options = options
        self.figures = figures
        self.scenario = scenario
        self.booted = False
        self._random = random.Random(plan.seed)
        self._callerror_code: str | None = None

    # -- counting ----------------------------------------------------------------

    def call(self, request: Any) -> Any:
        """The simulator's call, timed: the answer's latency, or the failure's code."""
        action = message_info(request).action
        self.figures.sent(action)
        self._callerror_code = None
        started = time.perf_counter()
        try:
            response = super().call(request)
        except CallError as exc:
            self.figures.error(action, exc.code, time.perf_counter() - started)
            raise
        except CALL_FAILURES as exc:
            self.figures.error(action, type(exc).__name__)
            raise
        if isinstance(response, QueuedCall):  # offline: the ChargePoint's queue delivers it later
            self.figures.event("queued")
        elif response is None:  # a CALLERROR to a message the station does without
            self.figures.error(action, self._callerror_code or "CallError",
                               time.perf_counter() - started)
        else:
            self.figures.answer(action, time.perf_counter() - started)
        return response

    def boot(self) -> Any:
        """BootNotification; the first Accepted answer counts the station as booted."""
        response = super().boot()
        if response.status == "Accepted" and not self.booted:
            self.booted = True
            self.figures.event("booted")
        return response

    def _emit(self, station_id: str, sender: str, action: str, kind: str, message: Any) -> None:
        if kind == "error" and sender == CSMS and isinstance(message, dict):
            self._callerror_code = str(message.get("code"))
        super()._emit(station_id, sender, action, kind, message)

    def _lost(self, cp: ChargePoint) -> None:
        self.figures.event("disconnects")

    def _back(self, cp: ChargePoint) -> None:
        self.figures.event("reconnects")
        super()._back(cp)

    # -- the plan ----------------------------------------------------------------

    def drive(self, stop: threading.Event, start: float) -> None:
        """Connect at ``start`` + the plan's offset (monotonic seconds), then play the plan."""
        if stop.wait(max(0.0, start + self.plan.connect_at - time.monotonic())):
            return
        if not self._connect():
            return
        if self.scenario is not None:
            passed = run_scenario(self, self.scenario)
            self.figures.event("scenarios_passed" if passed else "scenarios_failed")
        else:
            self._boot(stop)
        self._live(stop)

    def _connect(self) -> bool:
        try:
            self.connect()
        except HandshakeError as exc:
            # An HTTP answer other than 101 is the CSMS saying no; anything else never got that far.
            self.figures.event("refused" if exc.status is not None else "connect_failed")
            self.figures.error(None, f"HTTP {exc.status}" if exc.status else type(exc).__name__)
            return False
        except (OCPPError, ConnectionError, TimeoutError, OSError) as exc:
            self.figures.event("connect_failed")
            self.figures.error(None, type(exc).__name__)
            return False
        self.figures.event("connected")
        return True

    def _boot(self, stop: threading.Event) -> None:
        """BootNotification until Accepted (a Pending or Rejected answer's interval apart)."""
        while not stop.is_set():
            try:
                response = self.boot()
            except CALL_FAILURES:
                if stop.wait(2.0):
                    return
                continue
            if response.status == "Accepted":
                for number in self.connectors:
                    self._try(self.status, self.connector(number).status, number)
                return
            if stop.wait(response.interval or 10):
                return

    def _try(self, call: Callable[..., Any], *args: Any, **keywords: Any) -> Any:
        """One call whose failure is already counted: the plan goes on without its answer."""
        try:
            return call(*args, **keywords)
        except CALL_FAILURES as exc:
            log.debug("%s: %s failed: %s", self.id, getattr(call, "__name__", call), exc)
            return None

    def _live(self, stop: threading.Event) -> None:
        """Heartbeats, status repeats and transactions on their schedule, CSMS commands between."""
        options = self.options
        heartbeat_every = self._heartbeat_every()
        status_every = options.status_interval or math.inf
        now = time.monotonic()
        next_heartbeat = now + heartbeat_every * self.plan.phase
        next_status = now + status_every * self.plan.phase
        next_charge = now + options.idle * self.plan.phase if self.plan.charges else math.inf
        next_meter = math.inf
        samples_left = 0
        while not stop.is_set():
            due = min(next_heartbeat, next_status, next_charge, next_meter)
            command = self.wait_for_command(max(0.0, due - time.monotonic()))
            if command is not None:
                if command.name == STOP.name:
                    return
                if command.name == "reconnected":
                    self._boot(stop)
                    heartbeat_every = self._heartbeat_every()  # the new boot answer's, unless fixed
                elif command.name == "heartbeat_interval":  # the CSMS changed HeartbeatInterval
                    self.heartbeat_interval = int(command.argument)
                    heartbeat_every = self._heartbeat_every()
                    next_heartbeat = min(next_heartbeat, time.monotonic() + heartbeat_every)
                else:
                    self._try(self.carry_out, command, charge=False)
                if self.transaction_id is not None and next_meter == math.inf:  # a remote start
                    samples_left, next_meter = options.samples, time.monotonic() + options.meter_interval
                continue
            now = time.monotonic()
            # Offline, a station keeps its heartbeats and status repeats to itself, as a real one does.
            if now >= next_heartbeat:
                if self.cp.connected:
                    self._try(self.heartbeat)
                next_heartbeat = now + heartbeat_every
            if now >= next_status:
                if self.cp.connected:
                    self._try(self.status, self.connector(1).status)
                next_status = now + status_every
            if now >= next_charge:
                next_charge = math.inf
                if self._start_charge():
                    samples_left, next_meter = options.samples, now + options.meter_interval
                else:
                    next_charge = now + self._idle()
            if now >= next_meter:
                next_meter = now + options.meter_interval
                if self.transaction_id is not None and samples_left > 0:
                    samples_left -= 1
                    self._try(self.meter_values)
                    continue
                if self.transaction_id is not None:
                    self._try(self.stop_transaction, "Local")
                    self._try(self.status, "Available")
                next_meter = math.inf
                next_charge = now + self._idle() if self.plan.charges else math.inf

    def _heartbeat_every(self) -> float:
        """``--heartbeat-interval`` when given, else the CSMS's (boot answer or configuration)."""
        return self.options.heartbeat_interval or self.heartbeat_interval or 300.0

    def _start_charge(self) -> bool:
        """Authorize, start a transaction and say Charging; False if that did not happen."""
        if self.transaction_id is not None or not self._try(self.authorize):
            return False
        if self._try(self.start_transaction) is None:
            return False
        self._try(self.status, "Charging")
        return True

    def _idle(self) -> float:
        """A random pause before the next transaction, ``idle`` seconds on average."""
        return self._random.expovariate(1.0 / self.options.idle) if self.options.idle > 0 else 0.0
