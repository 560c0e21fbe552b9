"""The simulated central system: handlers for a CSMS that accepts every station."""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.sim.common import CSMS, STATION, Reporter, Reporting, error_payload, is_16, now, wire_value

__all__ = ["CentralSystem"]


class CentralSystem(Reporting):
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
            specific = self._handlers_16(module) if is_16(version) else self._handlers_2x(module)
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
                self._emit(station.id, CSMS, action, "error", error_payload(exc))
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
            return m.BootNotificationResponse(current_time=now(), interval=self.heartbeat_interval,
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
                         meter_last=request.meter_stop, reason=wire_value(request.reason) or "Local")
            return m.StopTransactionResponse(id_tag_info=accepted)

        return {
            "BootNotification": boot,
            "Heartbeat": lambda station, request: m.HeartbeatResponse(current_time=now()),
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
            return m.BootNotificationResponse(current_time=now(), interval=self.heartbeat_interval,
                                              status="Accepted")

        def transaction_event(station: Any, request: Any) -> Any:
            info = request.transaction_info
            values: dict[str, Any] = {"last_event": wire_value(request.event_type), "seq_no": request.seq_no}
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
                values["reason"] = wire_value(info.stopped_reason)
            self._record(station.id, info.transaction_id, **values)
            if request.id_token is not None:
                return m.TransactionEventResponse(id_token_info=accepted())
            return m.TransactionEventResponse()

        return {
            "BootNotification": boot,
            "Heartbeat": lambda station, request: m.HeartbeatResponse(current_time=now()),
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

