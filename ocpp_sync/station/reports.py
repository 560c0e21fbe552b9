"""What GetBaseReport and GetReport report, and the NotifyReport messages that carry it.

Pure: :func:`base_report` and :func:`custom_report` choose variables of a
:class:`~ocpp_sync.station.DeviceModel`; :func:`notify_reports` splits their
ReportData into NotifyReport messages numbered from seqNo 0, ``tbc`` on all but
the last, each within ItemsPerMessage and BytesPerMessage (the size of the whole
CALL frame, with the longest message id OCPP allows).

Our reading of the selections, where the text leaves a choice:

- ConfigurationInventory: the variables with an attribute the CSMS may write;
  SummaryInventory: the variables that tell a component's state
  (:data:`SUMMARY_VARIABLES`); FullInventory: every variable.
- componentCriteria: a component matches when any criterion holds. Active and
  Problem hold when the component's variable of that name is "true"; Available and
  Enabled hold unless that variable is "false" (a component without it is there).
- componentVariable: a field left out matches anything (no instance, no EVSE, no
  connector, no variable: every one); both filters given, a variable must pass both.
"""
from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from ocpp_sync.protocol.codec import to_payload
from ocpp_sync.protocol.frames import Call, serialise
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.device_model import DeviceModel, Variable

__all__ = ["REPORT_BASES", "CRITERIA", "SUMMARY_VARIABLES", "base_report", "custom_report", "report_data",
           "notify_reports", "frame_size"]

REPORT_BASES = ("ConfigurationInventory", "FullInventory", "SummaryInventory")
CRITERIA = ("Active", "Available", "Enabled", "Problem")
SUMMARY_VARIABLES = frozenset({"AvailabilityState", "Available", "Problem", "Tripped", "Overload", "Fallback"})

#: OCPP-J message ids are at most 36 characters; sizes are measured with the longest.
_LONGEST_ID = "x" * 36


def base_report(model: DeviceModel, base: str) -> list[Variable]:
    """The variables of a GetBaseReport ``base`` (one of :data:`REPORT_BASES`)."""
    variables = model.variables()
    if base == "ConfigurationInventory":
        return [v for v in variables if any(a.writable for a in v.attributes.values())]
    if base == "SummaryInventory":
        return [v for v in variables if v.id.name in SUMMARY_VARIABLES]
    if base == "FullInventory":
        return variables
    raise ValueError(f"report base {base!r} is not one of {', '.join(REPORT_BASES)}")


def _flag(model: DeviceModel, var: Variable, name: str) -> str | None:
    found = model.variable(var.component, name)
    return None if found is None else model.value(var.component, name)


def _meets(model: DeviceModel, var: Variable, criteria: Iterable[str]) -> bool:
    for criterion in criteria:
        flag = _flag(model, var, criterion)
        if criterion in ("Active", "Problem") and flag == "true":
            return True
        if criterion in ("Available", "Enabled") and flag != "false":
            return True
    return False


def _selected(var: Variable, wanted: Any) -> bool:
    """Whether ``var`` is named by a ComponentVariableType ``wanted``."""
    c, cid = wanted.component, var.component
    if c.name != cid.name or (c.instance is not None and c.instance != cid.instance):
        return False
    if c.evse is not None and (c.evse.id != cid.evse_id or (
            c.evse.connector_id is not None and c.evse.connector_id != cid.connector_id)):
        return False
    v = wanted.variable
    return v is None or (v.name == var.id.name and (v.instance is None or v.instance == var.id.instance))


def custom_report(model: DeviceModel, component_variables: Sequence[Any] | None,
                  criteria: Sequence[str] | None) -> list[Variable]:
    """The variables of a GetReport: those named by ``component_variables`` (ComponentVariableType
    objects) and whose component meets one of ``criteria``; a filter left out lets all through."""
    chosen = model.variables()
    if component_variables:
        chosen = [v for v in chosen if any(_selected(v, cv) for cv in component_variables)]
    if criteria:
        chosen = [v for v in chosen if _meets(model, v, criteria)]
    return chosen


def report_data(model: DeviceModel, var: Variable) -> Any:
    """``var`` as a ReportDataType: every attribute (a write-only one without its value) and
    the characteristics."""
    m = version_module(model.version)
    cid, ch = var.component, var.characteristics
    evse = None if cid.evse_id is None else m.EVSEType(id=cid.evse_id, connector_id=cid.connector_id)
    size = model.reporting_value_size()
    attributes = []
    for attr in var.attributes.values():
        value = model.value(cid, var.id, attr.type) if attr.readable else None
        attributes.append(m.VariableAttributeType(
            type=attr.type, value=None if value is None else value[:size], mutability=attr.mutability,
            persistent=attr.persistent, constant=attr.constant))
    extra = {} if model.version == "2.0.1" else {"max_elements": ch.max_elements}
    characteristics = m.VariableCharacteristicsType(
        unit=ch.unit, data_type=ch.data_type, min_limit=ch.min_limit, max_limit=ch.max_limit,
        values_list=",".join(ch.values_list) or None, supports_monitoring=ch.supports_monitoring, **extra)
    return m.ReportDataType(
        component=m.ComponentType(name=cid.name, instance=cid.instance, evse=evse),
        variable=m.VariableType(name=var.id.name, instance=var.id.instance),
        variable_attribute=attributes, variable_characteristics=characteristics)


def frame_size(action: str, message: Any) -> int:
    """Bytes of ``message`` sent as a CALL, with a 36-character message id."""
    return len(serialise(Call(_LONGEST_ID, action, to_payload(message))).encode("utf-8"))


def notify_reports(model: DeviceModel, request_id: int, variables: Sequence[Variable],
                   generated_at: datetime.datetime, *, items: int, max_bytes: int) -> list[Any]:
    """NotifyReport messages for ``variables``: at most ``items`` ReportData and ``max_bytes``
    bytes each (a single ReportData larger than that still goes, alone)."""
    m = version_module(model.version)

    def message(chunk: list[Any] | None, seq_no: int, tbc: bool) -> Any:
        return m.NotifyReportRequest(request_id=request_id, generated_at=generated_at, seq_no=seq_no,
                                     tbc=tbc or None, report_data=chunk)

    data = [report_data(model, v) for v in variables]
    # The frame grows by each item's JSON and a comma: measure each item once, not every frame,
    # with a seqNo at least as long as any the series will have.
    bare = frame_size("NotifyReport", message(None, len(data), True))
    key = len(',"reportData":[]')
    lengths = [frame_size("NotifyReport", message([d], len(data), True)) - bare - key for d in data]
    chunks: list[list[Any]] = []
    current: list[Any] = []
    used = bare + key
    for item, length in zip(data, lengths, strict=True):
        if current and (len(current) >= items or used + 1 + length > max_bytes):
            chunks.append(current)
            current, used = [], bare + key
        used += length + (1 if current else 0)
        current.append(item)
    if current:
        chunks.append(current)
    return [message(chunk, seq, seq < len(chunks) - 1) for seq, chunk in enumerate(chunks)]
