"""The simulated station: a charge point that boots, heartbeats, charges and obeys the CSMS.

The thread driving the simulator (the CLI's main thread, a test, a scenario)
makes every charge-point-initiated call; the CSMS's requests are answered in
the connection's worker thread (:mod:`ocpp_sync.sim.answers`, and the station
stack of :mod:`ocpp_sync.sim.stack`) and leave the follow-up work in
:attr:`StationSimulator.commands`. Each meter sample charges at the power the
composite schedule allows at that moment.
"""
from __future__ import annotations

import queue
import random as _random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from ocpp_sync._version import __version__
from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.chargepoint.outbox import Queued, QueuedCall
from ocpp_sync.errors import CallError, ConnectionClosed, HandshakeError, OCPPError
from ocpp_sync.protocol.retry import BackOff, TransactionRetry
from ocpp_sync.protocol.versions import message_info, version_module
from ocpp_sync.sim.answers import StationAnswers
from ocpp_sync.sim.common import CSMS, STATION, Command, Connector, Reporter, Reporting, error_payload, is_16, log, now
from ocpp_sync.sim.stack import SimulatedStack

__all__ = ["StationSimulator", "Connector", "NON_ESSENTIAL"]



@dataclass(frozen=True)
class AnnouncedBackOff(BackOff):
    """The reconnect schedule, logging every wait: a station waiting for its CSMS says so."""

    station_id: str = ""

    def delays(self, random: Callable[[], float] = _random.random) -> Iterator[float]:
        for attempt, delay in enumerate(super().delays(random), 1):
            log.warning("%s: reconnect attempt %d in %.1f s", self.station_id, attempt, delay)
            yield delay

#: Messages the station does without when the CSMS answers them with a CALLERROR: none of
#: them changes what happens next. A refused boot, tag or transaction message is an error.
NON_ESSENTIAL = frozenset({"StatusNotification", "Heartbeat", "MeterValues", "DataTransfer"})


class StationSimulator(StationAnswers, Reporting):
    """A charge point with ``connectors`` connectors that boots, heartbeats and charges on request.

    Drive it step by step (:meth:`boot`, :meth:`authorize`, :meth:`start_transaction`,
    ...), let :meth:`run` do a whole life (boot, heartbeats, one transaction,
    then obey the CSMS until told to stop), or play a scenario with
    :func:`run_scenario`.
    """

    def __init__(self, url: str, station_id: str, version: str = "1.6", *,
                 id_tag: str = "DEMO-TAG-01", power_w: int = 11000, sample_seconds: int = 60,
                 timeout: float = 10.0, report: Reporter | None = None, connectors: int = 1,
                 id_tags: list[str] | None = None, meter_interval: float = 1.0,
                 password: str | None = None, reconnect: bool = False,
                 backoff: BackOff | None = None, ssl_context: ssl.SSLContext | None = None,
                 voltage: float = 230.0, phases: int = 3) -> None:
        """``url``, ``station_id``, ``version``, ``timeout``, ``password`` (security profile
        1/2 Basic auth) and ``ssl_context`` (verifies a ``wss://`` CSMS) are the ChargePoint's.
        ``id_tag`` is the tag a charge presents unless ``id_tags`` gives one per connector;
        each meter sample adds a sample interval (``sample_seconds`` until the CSMS changes
        it) of charging at ``power_w``, or at the lower limit of the connector's composite
        schedule, converted to W with ``voltage`` and ``phases``; scenarios wait
        ``meter_interval`` real seconds between samples.
        ``report`` gets every :class:`Exchange`. With ``reconnect`` a lost connection is
        reopened after the ``backoff`` delays (each attempt logged) and :meth:`run` boots
        again once it is back; without, :meth:`run` ends when the connection does.
        """
        super().__init__(report)
        if connectors < 1:
            raise ValueError("a station needs at least one connector")
        self.id = station_id
        self.version = version
        self.m = version_module(version)
        self.id_tag = id_tag
        self.id_tags = list(id_tags or [id_tag])
        self.power_w = power_w
        self.meter_interval = meter_interval  # real seconds between a scenario's meter values
        self.reconnect = reconnect
        schedule = backoff or BackOff()
        # One attempt per transaction message: a CSMS that refuses one should be told at once,
        # not after minutes of retries that hold up every later transaction message.
        self.cp = ChargePoint(station_id, url, version=version, timeout=timeout, password=password,
                              ssl_context=ssl_context,
                              reconnect=reconnect, transaction_retry=TransactionRetry(attempts=1),
                              backoff=AnnouncedBackOff(schedule.wait_minimum, schedule.random_range,
                                                       schedule.repeat_times, station_id=station_id),
                              on_disconnect=self._lost, on_reconnect=self._back)
        self.commands: queue.Queue[Command] = queue.Queue()
        self.heartbeat_interval = 0
        self.transactions_done = 0
        self.connectors = {n: Connector(n) for n in range(1, connectors + 1)}
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards connector state as read by handlers
        self._received = threading.Condition(self._lock)
        self.received: list[str] = []  # actions of CSMS requests, in arrival order
        self.stack = SimulatedStack(
            version, connectors=connectors, sample_seconds=sample_seconds, power_w=power_w, voltage=voltage,
            phases=phases, reporter_name=f"ocpp-sim-{station_id}-reports",
            on_heartbeat_interval=lambda seconds: self.commands.put(Command("heartbeat_interval", seconds)))
        self.install_answers()

    def connector(self, connector_id: int = 1) -> Connector:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise ValueError(f"{self.id} has no connector {connector_id} "
                             f"(it has {len(self.connectors)})") from None

    @property
    def transaction_id(self) -> Any:
        """Connector 1's running transaction, or None."""
        return self.connectors[1].transaction_id

    @property
    def meter_wh(self) -> int:
        return self.connectors[1].meter_wh

    def setting(self, key: str) -> str | None:
        """A setting the simulator acts on, by its 1.6 key, as the stack of its version keeps it."""
        return self.stack.setting(key)

    @property
    def sample_seconds(self) -> int:
        """The simulated seconds one meter sample covers: the station's sample interval."""
        return int(self.setting("MeterValueSampleInterval") or 0)

    def power_now(self, connector: int = 1) -> float:
        """The power (W) ``connector`` charges at now: ``power_w`` capped by its composite schedule."""
        return self.stack.power_w(connector, self.power_w)

    # -- connection ------------------------------------------------------------

    def connect(self) -> None:
        self.cp.connect()

    def close(self, drain: float | None = None) -> None:
        """Stop heartbeats and close the connection; idempotent.

        ``drain`` bounds the wait for answers still due, and for the reports still
        queued (default: the ChargePoint's ``close_timeout``); 0 after Ctrl-C, when
        nobody waits for them any more.
        """
        self._heartbeat_stop.set()
        self.stack.stop(self.cp.close_timeout if drain is None else drain)
        self.cp.close(drain)  # first, so a heartbeat waiting for its answer fails at once
        self._stop_heartbeat_thread()

    def _stop_heartbeat_thread(self) -> None:
        self._heartbeat_stop.set()
        thread, self._heartbeat_thread = self._heartbeat_thread, None
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> StationSimulator:
        self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def call(self, request: Any) -> Any:
        """Send one request, reporting it and what came back.

        A CALLERROR to a :data:`NON_ESSENTIAL` message is logged and the answer
        is None: a CSMS that does not take them is still one to charge with.
        Any other CALLERROR is raised.
        """
        action = message_info(request).action
        self._emit(self.id, STATION, action, "request", request)
        try:
            response = self.cp.send(request)
        except Queued as queued:  # offline: the queue delivers it once we are back
            log.info("%s: %s queued until the CSMS is reachable", self.id, action)
            return queued.handle
        except CallError as exc:
            self._emit(self.id, CSMS, action, "error", error_payload(exc))
            if action not in NON_ESSENTIAL:
                raise
            log.warning("%s: the CSMS answered CALLERROR %s to %s (%s); going on without it",
                        self.id, exc.code, action, exc.description or "no description")
            return None
        self._emit(self.id, CSMS, action, "result", response)
        return response

    def start_heartbeats(self, interval: float | None = None) -> None:
        """Send Heartbeat every ``interval`` seconds (default: what the boot answer said)."""
        interval = interval or self.heartbeat_interval
        if self._heartbeat_thread is not None or not interval or interval <= 0:
            return
        self._heartbeat_stop.clear()
        thread = threading.Thread(target=self._heartbeat_loop, args=(float(interval),), daemon=True,
                                  name=f"ocpp-sim-{self.id}-heartbeat")
        thread.start()
        # Kept once started: Ctrl-C inside start() must not leave close() a thread join() refuses
        # ("cannot join thread before it is started"); such a one ends on _heartbeat_stop.
        self._heartbeat_thread = thread

    def _heartbeat_loop(self, interval: float) -> None:
        while not self._heartbeat_stop.wait(interval):
            try:
                self.heartbeat()
            except (OCPPError, ConnectionError, TimeoutError) as exc:
                log.warning("%s: heartbeat failed: %s", self.id, exc)
                if not self.cp.connected:
                    return

    def wait_for_request(self, actions: Collection[str], after: int, timeout: float) -> int | None:
        """Index of the first CSMS request named in ``actions`` at or after ``after`` in
        :attr:`received`, waiting up to ``timeout`` s for one; None if none came."""
        def found() -> int | None:
            for index in range(after, len(self.received)):
                if self.received[index] in actions:
                    return index
            return None
        with self._received:
            self._received.wait_for(lambda: found() is not None, timeout)
            return found()

    # -- charge-point-initiated messages --------------------------------------

    def boot(self) -> Any:
        """BootNotification; remembers the heartbeat interval it was given."""
        m = self.m
        if is_16(self.version):
            request = m.BootNotificationRequest(charge_point_vendor="ocpp_sync",
                                                charge_point_model="Simulator",
                                                firmware_version=__version__)
        else:
            request = m.BootNotificationRequest(
                reason="PowerUp",
                charging_station=m.ChargingStationType(vendor_name="ocpp_sync", model="Simulator",
                                                       firmware_version=__version__))
        response = self.call(request)
        self.heartbeat_interval = response.interval
        self.stack.booted(response.interval)
        return response

    def heartbeat(self) -> Any:
        return self.call(self.m.HeartbeatRequest())

    def status(self, status: str, connector: int = 1) -> Any:
        """StatusNotification for ``connector``, in 1.6 terms ("Available", "Charging", ...).

        2.x has fewer connector states: anything but Available/Unavailable/
        Faulted/Reserved is reported as Occupied.
        """
        m = self.m
        state = self.connector(connector)
        with self._lock:
            state.status = status
        if is_16(self.version):
            return self.call(m.StatusNotificationRequest(connector_id=connector, error_code="NoError",
                                                         status=status, timestamp=now()))
        if status not in ("Available", "Unavailable", "Faulted", "Reserved"):
            status = "Occupied"
        return self.call(m.StatusNotificationRequest(timestamp=now(), connector_status=status,
                                                     evse_id=connector, connector_id=1))

    def authorize(self, id_tag: str | None = None) -> bool:
        """Authorize; True if the CSMS accepted the tag."""
        m = self.m
        id_tag = id_tag or self.id_tag
        if is_16(self.version):
            response = self.call(m.AuthorizeRequest(id_tag=id_tag))
            return bool(response.id_tag_info.status == "Accepted")
        response = self.call(m.AuthorizeRequest(id_token=self._id_token(id_tag)))
        return bool(response.id_token_info.status == "Accepted")

    def start_transaction(self, id_tag: str | None = None, connector: int = 1) -> Any:
        """Start charging on ``connector``; returns the transaction id."""
        m = self.m
        id_tag = id_tag or self.id_tag
        state = self.connector(connector)
        if state.transaction_id is not None:
            raise ValueError(f"connector {connector} already has transaction {state.transaction_id}")
        if is_16(self.version):
            response = self.call(m.StartTransactionRequest(connector_id=connector, id_tag=id_tag,
                                                           meter_start=state.meter_wh,
                                                           timestamp=now()))
            # Queued while offline: the queue's placeholder id stands in until the real one is known.
            transaction_id = response.local_transaction_id if isinstance(response, QueuedCall) \
                else response.transaction_id
        else:
            transaction_id = str(uuid.uuid4())
            state.seq_no = 0
            trigger = "RemoteStart" if state.remote_start_id is not None else "Authorized"
            self.call(m.TransactionEventRequest(
                event_type="Started", timestamp=now(), trigger_reason=trigger,
                seq_no=self._next_seq(state),
                transaction_info=m.TransactionType(transaction_id=transaction_id,
                                                   charging_state="Charging",
                                                   remote_start_id=state.remote_start_id),
                id_token=self._id_token(id_tag), evse=m.EVSEType(id=connector, connector_id=1),
                meter_value=[self._meter_value_2x(state, "Transaction.Begin")]))
            state.remote_start_id = None
        with self._lock:
            state.transaction_id = transaction_id
            state.id_tag = id_tag
        self.stack.transaction_started(connector, transaction_id)
        return transaction_id

    def meter_values(self, connector: int = 1) -> Any:
        """One meter sample: :attr:`sample_seconds` of charging at :meth:`power_now` after the last."""
        m = self.m
        state = self.connector(connector)
        state.meter_wh += int(self.power_now(connector) * self.sample_seconds) // 3600
        if is_16(self.version):
            sample = m.SampledValue(value=str(state.meter_wh), context="Sample.Periodic",
                                    measurand="Energy.Active.Import.Register", unit="Wh")
            return self.call(m.MeterValuesRequest(
                connector_id=connector, transaction_id=state.transaction_id,
                meter_value=[m.MeterValue(timestamp=now(), sampled_value=[sample])]))
        if state.transaction_id is None:
            return self.call(m.MeterValuesRequest(
                evse_id=connector, meter_value=[self._meter_value_2x(state, "Sample.Periodic")]))
        return self.call(m.TransactionEventRequest(
            event_type="Updated", timestamp=now(), trigger_reason="MeterValuePeriodic",
            seq_no=self._next_seq(state),
            transaction_info=m.TransactionType(transaction_id=state.transaction_id,
                                               charging_state="Charging"),
            meter_value=[self._meter_value_2x(state, "Sample.Periodic")]))

    def stop_transaction(self, reason: str = "Local", connector: int = 1) -> Any:
        """End ``connector``'s transaction (``reason`` in 1.6 terms: Local, Remote, SoftReset...)."""
        m = self.m
        state = self.connector(connector)
        with self._lock:
            transaction_id, state.transaction_id = state.transaction_id, None
        if transaction_id is None:
            return None
        self.stack.transaction_ended(transaction_id)
        self.transactions_done += 1
        if is_16(self.version):
            return self.call(m.StopTransactionRequest(
                transaction_id=transaction_id, meter_stop=state.meter_wh, timestamp=now(),
                id_tag=state.id_tag or self.id_tag, reason=reason))
        reason_2x = {"SoftReset": "ImmediateReset", "HardReset": "ImmediateReset",
                     "Remote": "Remote", "Local": "Local", "EVDisconnected": "EVDisconnected",
                     "UnlockCommand": "Other"}.get(reason, "Other")
        trigger = "RemoteStop" if reason == "Remote" else (
            "ResetCommand" if reason_2x == "ImmediateReset" else "StopAuthorized")
        return self.call(m.TransactionEventRequest(
            event_type="Ended", timestamp=now(), trigger_reason=trigger,
            seq_no=self._next_seq(state),
            transaction_info=m.TransactionType(transaction_id=transaction_id,
                                               charging_state="Idle", stopped_reason=reason_2x),
            evse=m.EVSEType(id=connector, connector_id=1),
            meter_value=[self._meter_value_2x(state, "Transaction.End")]))

    def _id_token(self, id_tag: str) -> Any:
        return self.m.IdTokenType(id_token=id_tag, type="ISO14443")

    @staticmethod
    def _next_seq(state: Connector) -> int:
        seq_no, state.seq_no = state.seq_no, state.seq_no + 1
        return seq_no

    def _meter_value_2x(self, state: Connector, context: str) -> Any:
        m = self.m
        return m.MeterValueType(timestamp=now(), sampled_value=[m.SampledValueType(
            value=state.meter_wh, context=context, measurand="Energy.Active.Import.Register")])

    # -- driving a whole session ----------------------------------------------

    def charge(self, samples: int, interval: float = 0.0, connector: int = 1) -> str:
        """Authorize, start, send ``samples`` meter values ``interval`` s apart, stop.

        A remote stop ends the charge early; returns the stop reason.
        """
        state = self.connector(connector)
        if not self.authorize():
            return "NotAuthorized"
        self.start_transaction(connector=connector)
        self.status("Charging", connector)
        reason = None
        for _ in range(samples):
            reason = self.charging_for(interval, connector)
            if reason is not None:
                break
            self.meter_values(connector)
        reason = reason or "Local"
        if state.transaction_id is not None:
            self.stop_transaction(reason, connector)
        self.status("Available", connector)
        return reason

    def run(self, stop: threading.Event, *, once: bool = False, samples: int = 3,
            interval: float = 1.0) -> None:
        """Boot (again until accepted), heartbeat, charge once, then obey the CSMS until ``stop``.

        ``once`` returns after that first charge. With :attr:`reconnect` a lost
        connection is waited out and the station boots again when it is back
        (charging then if ``once`` had not finished); without, a lost
        connection ends the run (ConnectionClosed if it was lost mid-call).
        """
        done = False  # the first charge is over (or its tag was refused)
        start = True  # boot next: at first, and once more after each reconnect
        while not stop.is_set() and (self.cp.connected or self.reconnect):
            refused = self.refused
            if refused is not None:
                raise refused
            try:
                if start:
                    start = False
                    done = self._start(stop, not done, samples, interval) or done
                    if once and done:
                        return
                    continue
                command = self.wait_for_command(0.2)
                if command is None:
                    continue
                if command.name == "reconnected":
                    start = True
                else:
                    self.carry_out(command, samples=samples, interval=interval)
            except ConnectionClosed as exc:
                if not self.reconnect:
                    raise
                log.warning("%s: %s; waiting for the connection to come back", self.id, exc)

    def _start(self, stop: threading.Event, charge: bool, samples: int, interval: float) -> bool:
        """Boot until accepted, heartbeats, every connector Available, a charge; False if stopped first."""
        while not stop.is_set():
            response = self.boot()
            if response.status == "Accepted":
                break
            stop.wait(response.interval or 10)
        if stop.is_set():
            return False
        self._stop_heartbeat_thread()
        self.start_heartbeats()
        for number in self.connectors:
            self.status("Available", number)
        if charge:
            self.charge(samples, interval)
        return True

    @property
    def refused(self) -> HandshakeError | None:
        """Why the ChargePoint gave up reconnecting (a refusal no retry heals), or None."""
        # The ChargePoint keeps it for connect() to raise; the run loop must not wait forever.
        fatal: HandshakeError | None = getattr(self.cp, "_fatal", None)
        return fatal

    def _lost(self, cp: ChargePoint) -> None:
        """on_disconnect (the reconnect thread): say so; the driving thread carries on."""
        log.warning("%s: the connection to the CSMS was lost%s", self.id,
                    "; reconnecting" if self.reconnect else "")

    def _back(self, cp: ChargePoint) -> None:
        """on_reconnect (the reconnect thread): the driving thread boots again."""
        log.warning("%s: connected to the CSMS again", self.id)
        self.commands.put(Command("reconnected"))

    def charging_for(self, seconds: float, connector: int = 1) -> str | None:
        """Obey the CSMS for ``seconds`` of charging; the stop reason if a command ends the charge."""
        state = self.connector(connector)
        deadline = time.monotonic() + seconds
        while True:
            try:
                command = self.commands.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if command.name == "remote_stop" and command.argument == state.transaction_id:
                return "Remote"
            if command.name == "reset":
                self.commands.put(command)  # reboot once the transaction has ended
                return str(command.argument)
            self.carry_out(command, charge=False)
            if state.transaction_id is None:
                return "Other"

    def wait_for_command(self, timeout: float) -> Command | None:
        """The next command the CSMS queued, or None after ``timeout`` s."""
        try:
            return self.commands.get(timeout=timeout)
        except queue.Empty:
            return None

    def carry_out_pending(self) -> None:
        """Do every command queued so far, without charging sessions of our own."""
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self.carry_out(command, charge=False)

    def carry_out(self, command: Command, *, samples: int = 3, interval: float = 1.0,
                  charge: bool = True) -> None:
        """Do what an accepted CSMS command promised.

        ``charge`` False (scenarios): a remote start only starts the transaction;
        the scenario decides about meter values and the stop.
        """
        if command.name == "remote_stop":
            state = self._holding(command.argument)
            if state is not None:
                self.stop_transaction("Remote", state.id)
                self.status("Available", state.id)
        elif command.name == "remote_start":
            id_tag, number = command.argument
            state = self.connector(number)
            if state.transaction_id is None:
                self.id_tag = id_tag
                if charge:
                    self.charge(samples, interval, number)
                else:
                    self.start_transaction(id_tag, number)
                    self.status("Charging", number)
        elif command.name == "reset":
            for state in self.connectors.values():
                if state.transaction_id is not None:
                    self.stop_transaction(command.argument, state.id)
            self.boot()
            for number in self.connectors:
                self.status("Available", number)
        elif command.name == "reconnected":  # the CSMS may have restarted: tell it who we are
            self.boot()
            for number, state in self.connectors.items():
                self.status(state.status, number)
        elif command.name == "trigger":
            self._triggered(*command.argument)
        elif command.name == "availability":
            number, status = command.argument
            self.status(status, number)
        elif command.name == "unlock":
            state = self.connector(command.argument)
            if state.transaction_id is not None:
                self.stop_transaction("UnlockCommand", state.id)
                self.status("Available", state.id)
        elif command.name == "heartbeat_interval" and self._heartbeat_thread is not None:
            self._stop_heartbeat_thread()
            self.start_heartbeats(command.argument)

    def _triggered(self, what: str, number: int | None) -> None:
        numbers = [number] if number else list(self.connectors)
        if what == "BootNotification":
            self.boot()
        elif what == "Heartbeat":
            self.heartbeat()
        elif what == "StatusNotification":
            for n in numbers:
                self.status(self.connectors[n].status, n)
        elif what == "MeterValues":
            for n in numbers:
                self.meter_values(n)

