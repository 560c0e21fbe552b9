"""A simulated charge point and a permissive central system, for the CLI, examples and tests.

Both sides speak 1.6 and 2.x (2.0.1 and 2.1 share the message shapes used
here). They report every exchange to an optional callback instead of printing,
so the CLI decides how to show it and tests can inspect it.

The simulator's handlers never make calls themselves: a CSMS command that needs
follow-up messages (a remote stop needs a StopTransaction) is answered at once
and queued, and the thread driving the simulator acts on it. That keeps the
order on the wire the one OCPP expects: the answer first, then the follow-up.
"""
from __future__ import annotations

import enum
import importlib.metadata
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from typing import Any

import attrs

import ocpp_sync
from ocpp_sync.errors import CallError, OCPPError
from ocpp_sync.protocol.codec import to_payload
from ocpp_sync.protocol.versions import message_info, version_module

__all__ = ["Exchange", "CentralSystem", "StationSimulator", "Command", "Connector",
           "ScenarioError", "Step", "StepResult", "check_connectors", "load_scenario", "parse_scenario", "run_scenario"]

log = logging.getLogger("ocpp_sync.simulator")

STATION = "station"
CSMS = "csms"


@attrs.frozen
class Exchange:
    """One message seen by a simulated side: a request, its response, or an error."""

    station_id: str
    sender: str  # STATION or CSMS
    action: str
    kind: str  # "request", "result" or "error"
    payload: dict[str, Any]


Reporter = Callable[[Exchange], None]


@attrs.frozen
class Command:
    """Something the CSMS asked for that the driving thread has to carry out."""

    name: str  # "remote_start", "remote_stop", "reset", "trigger", "availability", "unlock", ...
    argument: Any = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _is_16(version: str) -> bool:
    return version == "1.6"


def _text(value: Any) -> Any:
    """An enum member's wire value; plain strings (also accepted by the classes) as they are."""
    return value.value if isinstance(value, enum.Enum) else value


class _Reporting:
    """Shared bookkeeping: report exchanges and count them by direction and action."""

    def __init__(self, report: Reporter | None) -> None:
        self._report = report
        self._count_lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()  # (sender, action) of requests

    def _emit(self, station_id: str, sender: str, action: str, kind: str, message: Any) -> None:
        if kind == "request":
            with self._count_lock:
                self.counts[(sender, action)] += 1
        if self._report is None:
            return
        payload = message if isinstance(message, dict) else to_payload(message)
        try:
            self._report(Exchange(station_id, sender, action, kind, payload))
        except Exception:
            log.exception("the exchange reporter failed")


def _error_payload(exc: OCPPError) -> dict[str, Any]:
    return {"code": exc.code, "description": exc.description}


class CentralSystem(_Reporting):
    """Handlers for a CSMS that accepts every station and answers sensibly.

    Boot, Authorize and transactions are accepted; 1.6 transaction ids count
    up from 1; every other charge-point-initiated request whose response has
    no required field gets that empty response. Transactions are recorded in
    :attr:`transactions` so a caller can tell what happened.
    """

    def __init__(self, *, heartbeat_interval: int = 300,
                 report: Reporter | None = None) -> None:
        super().__init__(report)
        self.heartbeat_interval = heartbeat_interval
        self._lock = threading.Lock()  # guards transactions and the id counter
        self._next_id = itertools.count(1)
        self.transactions: dict[tuple[str, Any], dict[str, Any]] = {}

    def install(self, csms: Any) -> None:
        """Register handlers on ``csms`` for each of its versions."""
        for version in csms.versions:
            module = version_module(version)
            specific = self._handlers_16(module) if _is_16(version) else self._handlers_2x(module)
            for action in sorted(module.CS_TO_CSMS):
                handler = specific.get(action) or self._empty_answer(module.RESPONSES.get(action))
                if handler is not None:
                    csms.on(module.REQUESTS[action])(self._wrap(action, handler))

    def transaction(self, station_id: str, transaction_id: Any) -> dict[str, Any]:
        with self._lock:
            return dict(self.transactions[(station_id, transaction_id)])

    def _wrap(self, action: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def answer(station: Any, request: Any) -> Any:
            self._emit(station.id, STATION, action, "request", request)
            try:
                response = handler(station, request)
            except OCPPError as exc:
                self._emit(station.id, CSMS, action, "error", _error_payload(exc))
                raise
            self._emit(station.id, CSMS, action, "result", response)
            return response
        return answer

    @staticmethod
    def _empty_answer(response_cls: type | None) -> Callable[[Any, Any], Any] | None:
        """A handler returning the empty response, if that response may be empty."""
        if response_cls is None or any(f.default is attrs.NOTHING for f in attrs.fields(response_cls)):
            return None
        return lambda station, request: response_cls()

    def _record(self, station_id: str, transaction_id: Any, **values: Any) -> None:
        with self._lock:
            self.transactions.setdefault((station_id, transaction_id), {}).update(values)

    # -- 1.6 ------------------------------------------------------------------

    def _handlers_16(self, m: Any) -> dict[str, Callable[[Any, Any], Any]]:
        accepted = m.IdTagInfo(status=m.AuthorizationStatus.ACCEPTED)

        def boot(station: Any, request: Any) -> Any:
            return m.BootNotificationResponse(current_time=_now(), interval=self.heartbeat_interval,
                                              status=m.RegistrationStatus.ACCEPTED)

        def start(station: Any, request: Any) -> Any:
            with self._lock:
                transaction_id = next(self._next_id)
            self._record(station.id, transaction_id, id_tag=request.id_tag,
                         meter_start=request.meter_start, meter_last=request.meter_start)
            return m.StartTransactionResponse(transaction_id=transaction_id, id_tag_info=accepted)

        def meter_values(station: Any, request: Any) -> Any:
            if request.transaction_id is not None:
                for value in request.meter_value:
                    for sample in value.sampled_value:
                        if sample.measurand in (None, "Energy.Active.Import.Register"):
                            self._record(station.id, request.transaction_id,
                                         meter_last=int(float(sample.value)))
            return m.MeterValuesResponse()

        def stop(station: Any, request: Any) -> Any:
            self._record(station.id, request.transaction_id, meter_stop=request.meter_stop,
                         meter_last=request.meter_stop, reason=_text(request.reason) or "Local")
            return m.StopTransactionResponse(id_tag_info=accepted)

        return {
            "BootNotification": boot,
            "Heartbeat": lambda station, request: m.HeartbeatResponse(current_time=_now()),
            "Authorize": lambda station, request: m.AuthorizeResponse(id_tag_info=accepted),
            "StartTransaction": start,
            "MeterValues": meter_values,
            "StopTransaction": stop,
            "DataTransfer": lambda station, request: m.DataTransferResponse(
                status=m.DataTransferStatus.UNKNOWN_VENDOR_ID),
        }

    # -- 2.0.1 and 2.1 --------------------------------------------------------

    def _handlers_2x(self, m: Any) -> dict[str, Callable[[Any, Any], Any]]:
        def accepted() -> Any:
            return m.IdTokenInfoType(status="Accepted")

        def boot(station: Any, request: Any) -> Any:
            return m.BootNotificationResponse(current_time=_now(), interval=self.heartbeat_interval,
                                              status="Accepted")

        def transaction_event(station: Any, request: Any) -> Any:
            info = request.transaction_info
            values: dict[str, Any] = {"last_event": _text(request.event_type), "seq_no": request.seq_no}
            energy = _energy_2x(request.meter_value)
            if energy is not None:
                values["meter_last"] = energy
                if request.event_type == "Started":
                    values["meter_start"] = energy
                elif request.event_type == "Ended":
                    values["meter_stop"] = energy
            if request.id_token is not None:
                values["id_tag"] = request.id_token.id_token
            if info.stopped_reason is not None:
                values["reason"] = _text(info.stopped_reason)
            self._record(station.id, info.transaction_id, **values)
            if request.id_token is not None:
                return m.TransactionEventResponse(id_token_info=accepted())
            return m.TransactionEventResponse()

        return {
            "BootNotification": boot,
            "Heartbeat": lambda station, request: m.HeartbeatResponse(current_time=_now()),
            "Authorize": lambda station, request: m.AuthorizeResponse(id_token_info=accepted()),
            "TransactionEvent": transaction_event,
            "DataTransfer": lambda station, request: m.DataTransferResponse(status="UnknownVendorId"),
        }


def _energy_2x(meter_values: list[Any] | None) -> int | None:
    """The last energy register reading in a 2.x meterValue list, in Wh."""
    energy = None
    for value in meter_values or ():
        for sample in value.sampled_value:
            if sample.measurand in (None, "Energy.Active.Import.Register"):
                energy = int(sample.value)
    return energy


@attrs.define
class Connector:
    """One connector's state; 2.x maps connector ``n`` to EVSE ``n``, connector 1."""

    id: int
    status: str = "Available"
    transaction_id: Any = None
    id_tag: str | None = None
    meter_wh: int = 0
    seq_no: int = 0
    remote_start_id: int | None = None


# 2.x component/variable pairs backed by the same setting as their 1.6 key.
VARIABLES_2X: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "HeartbeatInterval",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "MeterValueSampleInterval",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "AuthorizeRemoteTxRequests",
    ("EVSE", "Count"): "NumberOfConnectors",
    ("ChargingStation", "Model"): "Model",
}


class StationSimulator(_Reporting):
    """A charge point with ``connectors`` connectors that boots, heartbeats and charges on request.

    Drive it step by step (:meth:`boot`, :meth:`authorize`, :meth:`start_transaction`,
    ...), let :meth:`run` do a whole life (boot, heartbeats, one transaction,
    then obey the CSMS until told to stop), or play a scenario with
    :func:`run_scenario`.
    """

    def __init__(self, url: str, station_id: str, version: str = "1.6", *,
                 id_tag: str = "DEMO-TAG-01", power_w: int = 11000, sample_seconds: int = 60,
                 timeout: float = 10.0, report: Reporter | None = None, connectors: int = 1,
                 id_tags: list[str] | None = None, meter_interval: float = 1.0) -> None:
        super().__init__(report)
        if connectors < 1:
            raise ValueError("a station needs at least one connector")
        self.id = station_id
        self.version = version
        self.m = version_module(version)
        self.id_tag = id_tag
        self.id_tags = list(id_tags or [id_tag])
        self.power_w = power_w
        self.sample_seconds = sample_seconds
        self.meter_interval = meter_interval  # real seconds between a scenario's meter values
        self.cp = ocpp_sync.ChargePoint(station_id, url, version=version, timeout=timeout)
        self.commands: queue.Queue[Command] = queue.Queue()
        self.heartbeat_interval = 0
        self.transactions_done = 0
        self.connectors = {n: Connector(n) for n in range(1, connectors + 1)}
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards config and connector state as read by handlers
        self._received = threading.Condition(self._lock)
        self.received: list[str] = []  # actions of CSMS requests, in arrival order
        # One store for both versions: 2.x variables are views of these keys (VARIABLES_2X).
        self.config: dict[str, tuple[str, bool]] = {
            "HeartbeatInterval": ("300", False),
            "MeterValueSampleInterval": (str(sample_seconds), False),
            "NumberOfConnectors": (str(connectors), True),
            "AuthorizeRemoteTxRequests": ("false", False),
            "Model": ("Simulator", True),
        }
        if _is_16(version):
            self._install_16()
        else:
            self._install_2x()

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
        with self._lock:
            entry = self.config.get(key)
        return None if entry is None else entry[0]

    def _set(self, key: str, value: str) -> str:
        """Change one setting; the status word both versions use ("Accepted", "Rejected", ...)."""
        with self._lock:
            current = self.config.get(key)
            if current is None:
                return "NotSupported"
            if current[1]:
                return "Rejected"
            if key == "HeartbeatInterval" and not value.isdigit():
                return "Rejected"
            self.config[key] = (value, False)
        if key == "HeartbeatInterval":
            self.commands.put(Command("heartbeat_interval", int(value)))
        return "Accepted"

    # -- connection ------------------------------------------------------------

    def connect(self) -> None:
        self.cp.connect()

    def close(self) -> None:
        """Stop heartbeats and close the connection; idempotent."""
        self._heartbeat_stop.set()
        self.cp.close()  # first, so a heartbeat waiting for its answer fails at once
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
        """Send one request, reporting it and what came back."""
        action = message_info(request).action
        self._emit(self.id, STATION, action, "request", request)
        try:
            response = self.cp.send(request)
        except CallError as exc:
            self._emit(self.id, CSMS, action, "error", _error_payload(exc))
            raise
        self._emit(self.id, CSMS, action, "result", response)
        return response

    def start_heartbeats(self, interval: float | None = None) -> None:
        """Send Heartbeat every ``interval`` seconds (default: what the boot answer said)."""
        interval = interval or self.heartbeat_interval
        if self._heartbeat_thread is not None or not interval or interval <= 0:
            return
        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, args=(float(interval),), daemon=True,
            name=f"ocpp-sim-{self.id}-heartbeat")
        self._heartbeat_thread.start()

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
        if _is_16(self.version):
            request = m.BootNotificationRequest(charge_point_vendor="ocpp_sync",
                                                charge_point_model="Simulator",
                                                firmware_version=ocpp_sync_version())
        else:
            request = m.BootNotificationRequest(
                reason="PowerUp",
                charging_station=m.ChargingStationType(vendor_name="ocpp_sync", model="Simulator",
                                                       firmware_version=ocpp_sync_version()))
        response = self.call(request)
        self.heartbeat_interval = response.interval
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
        if _is_16(self.version):
            return self.call(m.StatusNotificationRequest(connector_id=connector, error_code="NoError",
                                                         status=status, timestamp=_now()))
        if status not in ("Available", "Unavailable", "Faulted", "Reserved"):
            status = "Occupied"
        return self.call(m.StatusNotificationRequest(timestamp=_now(), connector_status=status,
                                                     evse_id=connector, connector_id=1))

    def authorize(self, id_tag: str | None = None) -> bool:
        """Authorize; True if the CSMS accepted the tag."""
        m = self.m
        id_tag = id_tag or self.id_tag
        if _is_16(self.version):
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
        if _is_16(self.version):
            response = self.call(m.StartTransactionRequest(connector_id=connector, id_tag=id_tag,
                                                           meter_start=state.meter_wh,
                                                           timestamp=_now()))
            transaction_id = response.transaction_id
        else:
            transaction_id = str(uuid.uuid4())
            state.seq_no = 0
            trigger = "RemoteStart" if state.remote_start_id is not None else "Authorized"
            self.call(m.TransactionEventRequest(
                event_type="Started", timestamp=_now(), trigger_reason=trigger,
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
        return transaction_id

    def meter_values(self, connector: int = 1) -> Any:
        """One meter sample ``sample_seconds`` of charging at ``power_w`` after the last."""
        m = self.m
        state = self.connector(connector)
        state.meter_wh += self.power_w * self.sample_seconds // 3600
        if _is_16(self.version):
            sample = m.SampledValue(value=str(state.meter_wh), context="Sample.Periodic",
                                    measurand="Energy.Active.Import.Register", unit="Wh")
            return self.call(m.MeterValuesRequest(
                connector_id=connector, transaction_id=state.transaction_id,
                meter_value=[m.MeterValue(timestamp=_now(), sampled_value=[sample])]))
        if state.transaction_id is None:
            return self.call(m.MeterValuesRequest(
                evse_id=connector, meter_value=[self._meter_value_2x(state, "Sample.Periodic")]))
        return self.call(m.TransactionEventRequest(
            event_type="Updated", timestamp=_now(), trigger_reason="MeterValuePeriodic",
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
        self.transactions_done += 1
        if _is_16(self.version):
            return self.call(m.StopTransactionRequest(
                transaction_id=transaction_id, meter_stop=state.meter_wh, timestamp=_now(),
                id_tag=state.id_tag or self.id_tag, reason=reason))
        reason_2x = {"SoftReset": "ImmediateReset", "HardReset": "ImmediateReset",
                     "Remote": "Remote", "Local": "Local", "EVDisconnected": "EVDisconnected",
                     "UnlockCommand": "Other"}.get(reason, "Other")
        trigger = "RemoteStop" if reason == "Remote" else (
            "ResetCommand" if reason_2x == "ImmediateReset" else "StopAuthorized")
        return self.call(m.TransactionEventRequest(
            event_type="Ended", timestamp=_now(), trigger_reason=trigger,
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
        return m.MeterValueType(timestamp=_now(), sampled_value=[m.SampledValueType(
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
        """Boot (again until accepted), heartbeat, charge once, then obey the CSMS until ``stop``."""
        while not stop.is_set():
            response = self.boot()
            if response.status == "Accepted":
                break
            stop.wait(response.interval or 10)
        if stop.is_set():
            return
        self.start_heartbeats()
        for number in self.connectors:
            self.status("Available", number)
        self.charge(samples, interval)
        if once:
            return
        while not stop.is_set() and self.cp.connected:
            try:
                command = self.commands.get(timeout=0.2)
            except queue.Empty:
                continue
            self.carry_out(command, samples=samples, interval=interval)

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

    def _holding(self, transaction_id: Any) -> Connector | None:
        for state in self.connectors.values():
            if state.transaction_id is not None and state.transaction_id == transaction_id:
                return state
        return None

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

    # -- answering the CSMS ----------------------------------------------------

    def _handle(self, request_cls: type, handler: Callable[[Any], Any]) -> None:
        action = message_info(request_cls).action

        def answer(request: Any) -> Any:
            self._emit(self.id, CSMS, action, "request", request)
            response = handler(request)
            self._emit(self.id, STATION, action, "result", response)
            with self._received:
                self.received.append(action)
                self._received.notify_all()
            return response

        self.cp.on(request_cls)(answer)

    def _pick_connector(self, requested: int | None) -> int | None:
        """The connector a remote start goes to: the one asked for, else the first idle one."""
        with self._lock:
            if requested:
                state = self.connectors.get(requested)
                ok = (state is not None and state.transaction_id is None
                      and state.status != "Unavailable")
                return requested if ok else None
            for state in self.connectors.values():
                if state.transaction_id is None and state.status != "Unavailable":
                    return state.id
        return None

    def _availability(self, number: int, operative: bool) -> str:
        """Queue the status change; Scheduled while a transaction runs, Rejected for no connector."""
        numbers = list(self.connectors) if number == 0 else [number]
        if any(n not in self.connectors for n in numbers):
            return "Rejected"
        status = "Available" if operative else "Unavailable"
        with self._lock:
            busy = any(self.connectors[n].transaction_id is not None for n in numbers)
        if busy:
            return "Scheduled"
        for n in numbers:
            self.commands.put(Command("availability", (n, status)))
        return "Accepted"

    def _install_common(self, m: Any, reset_reason: Callable[[Any], str],
                        trigger_connector: Callable[[Any], int | None],
                        unlock_connector: Callable[[Any], int]) -> None:
        def reset(request: Any) -> Any:
            self.commands.put(Command("reset", reset_reason(request)))
            return m.ResetResponse(status="Accepted")

        def trigger(request: Any) -> Any:
            what = _text(request.requested_message)
            if what not in ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues"):
                return m.TriggerMessageResponse(status="NotImplemented")
            number = trigger_connector(request)
            if number and number not in self.connectors:
                return m.TriggerMessageResponse(status="Rejected")
            self.commands.put(Command("trigger", (what, number)))
            return m.TriggerMessageResponse(status="Accepted")

        def unlock(request: Any) -> Any:
            number = unlock_connector(request)
            if number not in self.connectors:
                return m.UnlockConnectorResponse(
                    status="NotSupported" if _is_16(self.version) else "UnknownConnector")
            self.commands.put(Command("unlock", number))
            return m.UnlockConnectorResponse(status="Unlocked")

        self._handle(m.ResetRequest, reset)
        self._handle(m.TriggerMessageRequest, trigger)
        self._handle(m.UnlockConnectorRequest, unlock)
        self._handle(m.ClearCacheRequest, lambda request: m.ClearCacheResponse(status="Accepted"))
        self._handle(m.DataTransferRequest,
                     lambda request: m.DataTransferResponse(status="UnknownVendorId"))

    def _install_16(self) -> None:
        m = self.m

        def remote_start(request: Any) -> Any:
            number = self._pick_connector(request.connector_id)
            if number is None:
                return m.RemoteStartTransactionResponse(status="Rejected")
            self.commands.put(Command("remote_start", (request.id_tag, number)))
            return m.RemoteStartTransactionResponse(status="Accepted")

        def remote_stop(request: Any) -> Any:
            with self._lock:
                ours = self._holding(request.transaction_id) is not None
            if not ours:
                return m.RemoteStopTransactionResponse(status="Rejected")
            self.commands.put(Command("remote_stop", request.transaction_id))
            return m.RemoteStopTransactionResponse(status="Accepted")

        def get_configuration(request: Any) -> Any:
            with self._lock:
                keys = request.key or sorted(self.config)
                known = [m.KeyValue(key=k, value=self.config[k][0], readonly=self.config[k][1])
                         for k in keys if k in self.config]
                unknown = [k for k in keys if k not in self.config]
            return m.GetConfigurationResponse(configuration_key=known or None,
                                              unknown_key=unknown or None)

        def change_availability(request: Any) -> Any:
            return m.ChangeAvailabilityResponse(status=self._availability(
                request.connector_id, _text(request.type) == "Operative"))

        self._install_common(m, lambda request: f"{_text(request.type)}Reset",
                             lambda request: request.connector_id,
                             lambda request: request.connector_id)
        self._handle(m.RemoteStartTransactionRequest, remote_start)
        self._handle(m.RemoteStopTransactionRequest, remote_stop)
        self._handle(m.GetConfigurationRequest, get_configuration)
        self._handle(m.ChangeConfigurationRequest, lambda request: m.ChangeConfigurationResponse(
            status=self._set(request.key, request.value)))
        self._handle(m.ChangeAvailabilityRequest, change_availability)

    def _install_2x(self) -> None:
        m = self.m

        def request_start(request: Any) -> Any:
            number = self._pick_connector(request.evse_id)
            if number is None:
                return m.RequestStartTransactionResponse(status="Rejected")
            self.connectors[number].remote_start_id = request.remote_start_id
            self.commands.put(Command("remote_start", (request.id_token.id_token, number)))
            return m.RequestStartTransactionResponse(status="Accepted")

        def request_stop(request: Any) -> Any:
            with self._lock:
                ours = self._holding(request.transaction_id) is not None
            if not ours:
                return m.RequestStopTransactionResponse(status="Rejected")
            self.commands.put(Command("remote_stop", request.transaction_id))
            return m.RequestStopTransactionResponse(status="Accepted")

        def get_variables(request: Any) -> Any:
            results = []
            for item in request.get_variable_data:
                key = VARIABLES_2X.get((item.component.name, item.variable.name))
                value = self.setting(key) if key is not None else None
                results.append(m.GetVariableResultType(
                    attribute_status="Accepted" if value is not None else "UnknownVariable",
                    attribute_value=value, component=item.component, variable=item.variable))
            return m.GetVariablesResponse(get_variable_result=results)

        def set_variables(request: Any) -> Any:
            results = []
            for item in request.set_variable_data:
                key = VARIABLES_2X.get((item.component.name, item.variable.name))
                status = self._set(key, item.attribute_value) if key is not None else "NotSupported"
                results.append(m.SetVariableResultType(
                    attribute_status={"NotSupported": "UnknownVariable"}.get(status, status),
                    component=item.component, variable=item.variable))
            return m.SetVariablesResponse(set_variable_result=results)

        def change_availability(request: Any) -> Any:
            number = request.evse.id if request.evse is not None else 0
            return m.ChangeAvailabilityResponse(status=self._availability(
                number, _text(request.operational_status) == "Operative"))

        def trigger_connector(request: Any) -> int | None:
            return request.evse.id if request.evse is not None else None

        self._install_common(m, lambda request: "HardReset", trigger_connector,
                             lambda request: request.evse_id)
        self._handle(m.RequestStartTransactionRequest, request_start)
        self._handle(m.RequestStopTransactionRequest, request_stop)
        self._handle(m.GetVariablesRequest, get_variables)
        self._handle(m.SetVariablesRequest, set_variables)
        self._handle(m.ChangeAvailabilityRequest, change_availability)


class ScenarioError(ValueError):
    """A scenario file that cannot be played: unreadable, not a list of steps, or a bad step."""


# Step name -> {argument: allowed types}; every argument is optional.
STEPS: dict[str, dict[str, tuple[type, ...]]] = {
    "boot": {},
    "heartbeat": {},
    "status": {"connector": (int,), "status": (str,)},
    "authorize": {"id_tag": (str,)},
    "start": {"connector": (int,), "id_tag": (str,)},
    "meter": {"connector": (int,), "samples": (int,), "interval": (int, float)},
    "stop": {"connector": (int,), "reason": (str,)},
    "wait": {"seconds": (int, float)},
    "expect": {"action": (str,), "timeout": (int, float)},
}
REQUIRED = {"status": ("status",), "expect": ("action",), "wait": ("seconds",)}


@attrs.frozen
class Step:
    name: str
    args: dict[str, Any]

    def describe(self) -> str:
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.args.items())])


@attrs.frozen
class StepResult:
    number: int
    total: int
    step: Step
    ok: bool
    result: str
    seconds: float


def parse_scenario(data: Any) -> list[Step]:
    """Check a decoded scenario (a list of one-key objects) and turn it into steps."""
    if isinstance(data, dict) and "steps" in data:
        data = data["steps"]
    if not isinstance(data, list) or not data:
        raise ScenarioError("a scenario is a non-empty list of steps (or {\"steps\": [...]})")
    steps = []
    for number, item in enumerate(data, 1):
        where = f"step {number}"
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ScenarioError(f"{where}: expected an object with one key, the step name, got {item!r}")
        (name, args), = item.items()
        if name not in STEPS:
            raise ScenarioError(f"{where}: unknown step {name!r} (known: {', '.join(STEPS)})")
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise ScenarioError(f"{where} ({name}): arguments must be an object, got {args!r}")
        for key, value in args.items():
            allowed = STEPS[name].get(key)
            if allowed is None:
                raise ScenarioError(f"{where} ({name}): unknown argument {key!r} "
                                    f"(known: {', '.join(STEPS[name]) or 'none'})")
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise ScenarioError(f"{where} ({name}): {key} must be "
                                    f"{' or '.join(t.__name__ for t in allowed)}, got {value!r}")
        for key in REQUIRED.get(name, ()):
            if key not in args:
                raise ScenarioError(f"{where} ({name}): {key!r} is required")
        steps.append(Step(name, dict(args)))
    return steps


def check_connectors(steps: list[Step], connectors: int) -> None:
    """A step naming a connector the station lacks is a mistake in the file, found up front."""
    for number, step in enumerate(steps, 1):
        connector = step.args.get("connector", 1)
        if not 1 <= connector <= connectors:
            raise ScenarioError(f"step {number} ({step.name}): connector {connector}, but the "
                                f"station has {connectors} (see --connectors)")


def load_scenario(path: str) -> list[Step]:
    """Read a JSON scenario (YAML too when PyYAML is installed)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ScenarioError(f"{path}: YAML scenarios need PyYAML; use JSON instead") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                                f"column {exc.colno}") from None
    try:
        return parse_scenario(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


# 1.6 command names and their 2.x counterparts, so a scenario names either.
_ALIASES = {"RemoteStopTransaction": "RequestStopTransaction",
            "RemoteStartTransaction": "RequestStartTransaction",
            "ChangeConfiguration": "SetVariables", "GetConfiguration": "GetVariables"}


def run_scenario(sim: StationSimulator, steps: list[Step],
                 progress: Callable[[StepResult], None] | None = None) -> bool:
    """Play ``steps`` in order, obeying CSMS commands between them; False at the first failure.

    Commands the CSMS sends during the scenario are carried out between steps
    (a remote stop ends the transaction), so an ``expect`` step sees their effect.
    """
    seen = 0  # how far into sim.received the expect steps have consumed
    for number, step in enumerate(steps, 1):
        started = time.monotonic()
        try:
            result, seen = _play(sim, step, seen)
            ok = True
        except (OCPPError, ConnectionError, TimeoutError, ValueError) as exc:
            result, ok = f"{type(exc).__name__}: {exc}", False
        if ok:
            sim.carry_out_pending()
        if progress is not None:
            progress(StepResult(number, len(steps), step, ok, result, time.monotonic() - started))
        if not ok:
            return False
    return True


def _play(sim: StationSimulator, step: Step, seen: int) -> tuple[str, int]:
    """Carry out one step; what happened, and the new expect position."""
    args = step.args
    connector = int(args.get("connector", 1))
    if step.name == "boot":
        response = sim.boot()
        return f"{_text(response.status)}, heartbeat every {response.interval} s", seen
    if step.name == "heartbeat":
        sim.heartbeat()
        return "ok", seen
    if step.name == "status":
        sim.status(args["status"], connector)
        return f"connector {connector} {args['status']}", seen
    if step.name == "authorize":
        tag = args.get("id_tag", sim.id_tags[0])
        if not sim.authorize(tag):
            raise ValueError(f"tag {tag} not authorized")
        return f"{tag} accepted", seen
    if step.name == "start":
        tag = args.get("id_tag", sim.id_tags[(connector - 1) % len(sim.id_tags)])
        transaction_id = sim.start_transaction(tag, connector)
        return f"transaction {transaction_id}", seen
    if step.name == "meter":
        state = sim.connector(connector)
        samples, sent = int(args.get("samples", 1)), 0
        interval = float(args.get("interval", sim.meter_interval))
        for _ in range(samples):
            if sim.charging_for(interval, connector) is not None:
                break
            sim.meter_values(connector)
            sent += 1
        stopped = "" if state.transaction_id is not None or sent == samples else ", transaction ended"
        return f"{sent} sample(s), {state.meter_wh} Wh{stopped}", seen
    if step.name == "stop":
        if sim.connector(connector).transaction_id is None:
            raise ValueError(f"connector {connector} has no transaction to stop")
        sim.stop_transaction(args.get("reason", "Local"), connector)
        return f"connector {connector} stopped", seen
    if step.name == "wait":
        deadline = time.monotonic() + float(args["seconds"])
        while (left := deadline - time.monotonic()) > 0:
            command = sim.wait_for_command(left)
            if command is not None:
                sim.carry_out(command, charge=False)
        return "ok", seen
    action = args["action"]
    names = {action} if _is_16(sim.version) else {action, _ALIASES.get(action, action)}
    timeout = float(args.get("timeout", 10))
    index = sim.wait_for_request(names, seen, timeout)
    if index is None:
        raise TimeoutError(f"no {action} from the CSMS within {timeout:g} s")
    return f"{sim.received[index]} received", index + 1


def ocpp_sync_version() -> str:
    """The installed package's version, for the simulated firmware version."""
    try:
        return importlib.metadata.version("ocpp_sync")
    except importlib.metadata.PackageNotFoundError:
        return "dev"
