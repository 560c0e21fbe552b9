"""The simulated station's answers to the CSMS's requests (reset, remote start, availability, ...).

A handler never makes a call itself: it answers at once and queues a
:class:`Command` that the driving thread carries out, so the answer goes out
before the follow-up messages, in the order OCPP expects. Configuration, the
device model and smart charging are answered by the station stack
(:mod:`ocpp_sync.sim.stack`), its handlers reported like these.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.protocol.versions import message_info
from ocpp_sync.sim.common import CSMS, STATION, Command, Connector, is_16, wire_value
from ocpp_sync.sim.stack import SimulatedStack

__all__ = ["StationAnswers"]


class _ReportedChargePoint:
    """The charge point as the station stack sees it: the stack's handlers are reported and
    recorded like the simulator's own, and its reports sent through the simulator's ``call``."""

    def __init__(self, answers: StationAnswers) -> None:
        self._answers = answers
        self.version = answers.cp.version

    def on(self, request_cls: type) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        def register(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
            self._answers._handle(request_cls, handler)
            return handler
        return register

    def after(self, request_cls: type) -> Callable[[Callable[[Any, Any], None]], Callable[[Any, Any], None]]:
        hook: Callable[[Callable[[Any, Any], None]], Callable[[Any, Any], None]] = self._answers.cp.after(request_cls)
        return hook

    def send(self, request: Any) -> Any:
        return self._answers.call(request)


class StationAnswers:
    """The handlers a :class:`~ocpp_sync.sim.station.StationSimulator` registers on its charge point.

    A mixin: the station owns the state named here and installs the handlers
    once its charge point exists.
    """

    id: str
    version: str
    m: Any
    cp: ChargePoint
    commands: queue.Queue[Command]
    connectors: dict[int, Connector]
    received: list[str]
    stack: SimulatedStack
    _lock: threading.Lock
    _received: threading.Condition

    if TYPE_CHECKING:  # provided by the station and its Reporting base
        def _emit(self, station_id: str, sender: str, action: str, kind: str, message: Any) -> None: ...

        def call(self, request: Any) -> Any: ...

    def install_answers(self) -> None:
        """Register a handler for every CSMS request the station understands."""
        if is_16(self.version):
            self._install_16()
        else:
            self._install_2x()
        self.stack.attach(_ReportedChargePoint(self))

    def _holding(self, transaction_id: Any) -> Connector | None:
        for state in self.connectors.values():
            if state.transaction_id is not None and state.transaction_id == transaction_id:
                return state
        return None


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
            what = wire_value(request.requested_message)
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
                    status="NotSupported" if is_16(self.version) else "UnknownConnector")
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

        def change_availability(request: Any) -> Any:
            return m.ChangeAvailabilityResponse(status=self._availability(
                request.connector_id, wire_value(request.type) == "Operative"))

        self._install_common(m, lambda request: f"{wire_value(request.type)}Reset",
                             lambda request: request.connector_id,
                             lambda request: request.connector_id)
        self._handle(m.RemoteStartTransactionRequest, remote_start)
        self._handle(m.RemoteStopTransactionRequest, remote_stop)
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

        def change_availability(request: Any) -> Any:
            number = request.evse.id if request.evse is not None else 0
            return m.ChangeAvailabilityResponse(status=self._availability(
                number, wire_value(request.operational_status) == "Operative"))

        def trigger_connector(request: Any) -> int | None:
            return request.evse.id if request.evse is not None else None

        self._install_common(m, lambda request: "HardReset", trigger_connector,
                             lambda request: request.evse_id)
        self._handle(m.RequestStartTransactionRequest, request_start)
        self._handle(m.RequestStopTransactionRequest, request_stop)
        self._handle(m.ChangeAvailabilityRequest, change_availability)

