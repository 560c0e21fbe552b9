"""The device model on the wire: GetVariables, SetVariables, GetBaseReport and GetReport
answered from a :class:`DeviceModel`, the reports sent as NotifyReport messages.

Limits come from the model's DeviceDataCtrlr. A request with more items than
ItemsPerMessage, or more bytes than BytesPerMessage (its payload, measured as
we would send it), is answered with a CALLERROR, OccurrenceConstraintViolation
or FormatViolation (2.0.1 B06.FR.16 / B06.FR.17 for GetVariables, B08.FR.17 /
B08.FR.18 for GetReport; SetVariables the same way). The NotifyReport series
is handed to a :class:`Reporter` once the answer is on the wire (the charge
point's ``after`` hook), so the CSMS always reads the answer first.
"""
from __future__ import annotations

import datetime
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.codec import to_payload
from ocpp_sync.protocol.datetimes import format_datetime
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.device_model import ComponentId, DeviceModel, Outcome, VariableId
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.reports import CRITERIA, REPORT_BASES, base_report, custom_report, notify_reports

__all__ = ["Change", "DeviceModelHandlers"]

log = logging.getLogger("ocpp_sync.station.device_model_handlers")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@attrs.frozen
class Change:
    """A value the CSMS changed with SetVariables: ``old`` (None if unset) became ``new``."""

    component: ComponentId
    variable: VariableId
    attribute: str
    old: str | None
    new: str
    reboot_required: bool


def _component_id(wire: Any) -> ComponentId:
    evse = wire.evse
    return ComponentId(wire.name, wire.instance, None if evse is None else evse.id,
                       None if evse is None else evse.connector_id)


def _payload_size(message: Any) -> int:
    return len(json.dumps(to_payload(message, lenient=True), separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8"))


class DeviceModelHandlers:
    """The device model requests of one 2.0.1 or 2.1 charge point, answered from ``model``.

    ``clock`` fills generatedAt and ClockCtrlr DateTime; ``reporter`` sends the
    NotifyReport series (one of its own, started at the first report, when None:
    :meth:`stop` ends it). ``report_bases`` and ``criteria`` are what this station
    supports; others are answered NotSupported.
    """

    def __init__(self, model: DeviceModel, *, clock: Callable[[], datetime.datetime] = utc_now,
                 reporter: Reporter | None = None, report_bases: Iterable[str] = REPORT_BASES,
                 criteria: Iterable[str] = CRITERIA) -> None:
        self.model = model
        self.version = model.version
        self.clock = clock
        self._own_reporter = reporter is None
        self.reporter = reporter or Reporter("ocpp-station-device-model-reports")
        self.report_bases = frozenset(report_bases)
        self.criteria = frozenset(criteria)
        self._m = version_module(self.version)
        self._callbacks: list[Callable[[Change], None]] = []
        self._pending: dict[int, list[Any]] = {}  # requestId: the series, until its answer is sent
        self._pending_lock = threading.Lock()
        self._cp: Any = None
        if model.variable("ClockCtrlr", "DateTime") is not None:
            model.bind("ClockCtrlr", "DateTime", lambda: format_datetime(self.clock()))

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[Change], None]:
        """Call ``callback(change)`` for every value SetVariables changed (usable as a decorator).

        Callbacks run in the connection's worker before the answer is sent: keep
        them short. One that raises is logged; the answer stays what the model said.
        """
        self._callbacks.append(callback)
        return callback

    def attach(self, cp: Any) -> None:
        """Answer the device model requests of ``cp`` (a ChargePoint of the model's version)."""
        if cp.version != self.version:
            raise ValueError(f"the model is {self.version}, the charge point {cp.version}")
        m = self._m
        self._cp = cp
        cp.on(m.GetVariablesRequest)(self.on_get_variables)
        cp.on(m.SetVariablesRequest)(self.on_set_variables)
        cp.on(m.GetBaseReportRequest)(self.on_get_base_report)
        cp.on(m.GetReportRequest)(self.on_get_report)
        cp.after(m.GetBaseReportRequest)(self._send_report)
        cp.after(m.GetReportRequest)(self._send_report)

    def stop(self, timeout: float = 5.0) -> None:
        """End the reporter thread if it is ours (sending what is queued first)."""
        if self._own_reporter:
            self.reporter.stop(timeout)

    # -- limits --------------------------------------------------------------------------------

    def _check_limits(self, operation: str, items: int, request: Any) -> None:
        most = self.model.int_value("DeviceDataCtrlr", VariableId("ItemsPerMessage", operation), 0)
        if most and items > most:
            raise OCPPError(f"{items} items, this station takes {most} per {operation}",
                            code="OccurrenceConstraintViolation")
        max_bytes = self.model.int_value("DeviceDataCtrlr", VariableId("BytesPerMessage", operation), 0)
        size = _payload_size(request)
        if max_bytes and size > max_bytes:
            raise OCPPError(f"{size} bytes, this station takes {max_bytes} per {operation}",
                            code="FormatViolation")

    def _info(self, outcome: Outcome) -> Any:
        if outcome.reason is None:
            return None
        return self._m.StatusInfoType(reason_code=outcome.reason[:20], additional_info=outcome.detail[:512] or None)

    # -- the handlers --------------------------------------------------------------------------

    def on_get_variables(self, request: Any) -> Any:
        m = self._m
        self._check_limits("GetVariables", len(request.get_variable_data), request)
        results = []
        for item in request.get_variable_data:
            attribute = str(item.attribute_type or "Actual")
            outcome = self.model.get(_component_id(item.component),
                                     VariableId(item.variable.name, item.variable.instance), attribute)
            results.append(m.GetVariableResultType(
                attribute_status=outcome.status, attribute_status_info=self._info(outcome),
                attribute_type=item.attribute_type, attribute_value=outcome.value,
                component=item.component, variable=item.variable))
        return m.GetVariablesResponse(get_variable_result=results)

    def on_set_variables(self, request: Any) -> Any:
        m = self._m
        self._check_limits("SetVariables", len(request.set_variable_data), request)
        results, changes = [], []
        for item in request.set_variable_data:
            attribute = str(item.attribute_type or "Actual")
            cid, vid = _component_id(item.component), VariableId(item.variable.name, item.variable.instance)
            var = self.model.variable(cid, vid)
            old = None if var is None or attribute not in var.attributes else var.attributes[attribute].value
            outcome = self.model.set(cid, vid, item.attribute_value, attribute, by_csms=True, save=False)
            if outcome.accepted and outcome.value != old:
                assert outcome.value is not None
                changes.append(Change(cid, vid, attribute, old, outcome.value, outcome.status == "RebootRequired"))
            results.append(m.SetVariableResultType(
                attribute_status=outcome.status, attribute_status_info=self._info(outcome),
                attribute_type=item.attribute_type, component=item.component, variable=item.variable))
        if changes:
            self.model.save()
        for change in changes:
            for callback in self._callbacks:
                try:
                    callback(change)
                except Exception:  # the application's failure must not change the answer
                    log.exception("a device model change callback failed for %s.%s",
                                  change.component.name, change.variable.name)
        return m.SetVariablesResponse(set_variable_result=results)

    def on_get_base_report(self, request: Any) -> Any:
        base = str(request.report_base)
        if base not in self.report_bases:
            return self._m.GetBaseReportResponse(status="NotSupported")
        return self._m.GetBaseReportResponse(status=self._prepare(request.request_id,
                                                                  base_report(self.model, base)))

    def on_get_report(self, request: Any) -> Any:
        m = self._m
        self._check_limits("GetReport", len(request.component_variable or ()), request)
        criteria = [str(c) for c in request.component_criteria or ()]
        if any(c not in self.criteria for c in criteria):
            return m.GetReportResponse(status="NotSupported")
        chosen = custom_report(self.model, request.component_variable, criteria)
        return m.GetReportResponse(status=self._prepare(request.request_id, chosen))

    def _prepare(self, request_id: int, variables: list[Any]) -> str:
        if not variables:
            return "EmptyResultSet"
        reports = notify_reports(
            self.model, request_id, variables, self.clock(),
            items=self.model.int_value("DeviceDataCtrlr", VariableId("ItemsPerMessage", "GetReport"), 50),
            max_bytes=self.model.int_value("DeviceDataCtrlr", VariableId("BytesPerMessage", "GetReport"), 65000))
        with self._pending_lock:
            self._pending[request_id] = reports
        return "Accepted"

    def _send_report(self, request: Any, response: Any) -> None:
        with self._pending_lock:
            reports = self._pending.pop(request.request_id, None)
        cp = self._cp
        if reports is None or cp is None or response.status != "Accepted":
            return

        def send_all() -> None:
            for report in reports:
                cp.send(report)

        self.reporter.submit(send_all)
