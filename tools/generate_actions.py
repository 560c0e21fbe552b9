"""The per-action call classes and the profile tables, generated next to each version's messages.

tools/generate_messages.py calls :func:`render_calls` and :func:`render_profiles`
for every version and writes ``ocpp_sync/<tag>/calls.py`` and
``ocpp_sync/<tag>/profiles.py``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp_sync.chargepoint.store import QUEUED_ACTIONS

# Which charge point messages go through its offline queue: their send() may raise Queued.
QUEUED = {tag: set(QUEUED_ACTIONS[version]) for tag, version in (("v16", "1.6"), ("v201", "2.0.1"), ("v21", "2.1"))}

# Parameter names a generated method keeps for itself; a field of that name gets a "_".
RESERVED = {"self", "timeout"}

# OCPP 1.6 feature profiles (1.6 specification, section 3.3) and the security
# extension's messages (OCA white paper "Improved security for OCPP 1.6-J").
V16_PROFILES = {
    "Core": """Authorize BootNotification ChangeAvailability ChangeConfiguration ClearCache DataTransfer
        GetConfiguration Heartbeat MeterValues RemoteStartTransaction RemoteStopTransaction Reset
        StartTransaction StatusNotification StopTransaction UnlockConnector""",
    "FirmwareManagement": "DiagnosticsStatusNotification FirmwareStatusNotification GetDiagnostics UpdateFirmware",
    "LocalAuthListManagement": "GetLocalListVersion SendLocalList",
    "Reservation": "CancelReservation ReserveNow",
    "SmartCharging": "ClearChargingProfile GetCompositeSchedule SetChargingProfile",
    "RemoteTrigger": "TriggerMessage",
    "Security": """CertificateSigned DeleteCertificate ExtendedTriggerMessage GetInstalledCertificateIds GetLog
        InstallCertificate LogStatusNotification SecurityEventNotification SignCertificate
        SignedFirmwareStatusNotification SignedUpdateFirmware""",
}

# OCPP 2.0.1 functional blocks (Part 2, one section per letter): the messages of their use cases.
V201_BLOCKS = {
    "A": ("Security", "CertificateSigned SecurityEventNotification SignCertificate"),
    "B": ("Provisioning", """BootNotification GetBaseReport GetReport GetVariables NotifyReport Reset
        SetNetworkProfile SetVariables"""),
    "C": ("Authorization", "Authorize ClearCache"),
    "D": ("LocalAuthorizationListManagement", "GetLocalListVersion SendLocalList"),
    "E": ("Transactions", "GetTransactionStatus TransactionEvent"),
    "F": ("RemoteControl", "RequestStartTransaction RequestStopTransaction TriggerMessage UnlockConnector"),
    "G": ("Availability", "ChangeAvailability Heartbeat StatusNotification"),
    "H": ("Reservation", "CancelReservation ReservationStatusUpdate ReserveNow"),
    "I": ("TariffAndCost", "CostUpdated"),
    "J": ("MeterValues", "MeterValues"),
    "K": ("SmartCharging", """ClearChargingProfile ClearedChargingLimit GetChargingProfiles GetCompositeSchedule
        NotifyChargingLimit NotifyEVChargingNeeds NotifyEVChargingSchedule ReportChargingProfiles
        SetChargingProfile"""),
    "L": ("FirmwareManagement", """FirmwareStatusNotification PublishFirmware PublishFirmwareStatusNotification
        UnpublishFirmware UpdateFirmware"""),
    "M": ("ISO15118CertificateManagement", """DeleteCertificate Get15118EVCertificate GetCertificateStatus
        GetInstalledCertificateIds InstallCertificate"""),
    "N": ("Diagnostics", """ClearVariableMonitoring CustomerInformation GetLog GetMonitoringReport
        LogStatusNotification NotifyCustomerInformation NotifyEvent NotifyMonitoringReport SetMonitoringBase
        SetMonitoringLevel SetVariableMonitoring"""),
    "O": ("DisplayMessage", "ClearDisplayMessage GetDisplayMessages NotifyDisplayMessages SetDisplayMessage"),
    "P": ("DataTransfer", "DataTransfer"),
}

# OCPP 2.1 keeps A..P (M is renamed), adds messages to some of them, and adds Q, R and S.
V21_ADDED = {
    "C": "NotifyWebPaymentStarted VatNumberValidation",
    "I": "ChangeTransactionTariff ClearTariffs GetTariffs NotifySettlement SetDefaultTariff",
    "K": "NotifyPriorityCharging PullDynamicScheduleUpdate UpdateDynamicSchedule UsePriorityCharging",
    "M": "GetCertificateChainStatus",
    "N": """AdjustPeriodicEventStream ClosePeriodicEventStream GetPeriodicEventStream NotifyPeriodicEventStream
        OpenPeriodicEventStream""",
}
V21_NEW_BLOCKS = {
    "Q": ("BidirectionalPowerTransfer", "AFRRSignal NotifyAllowedEnergyTransfer"),
    "R": ("DERControl", """ClearDERControl GetDERControl NotifyDERAlarm NotifyDERStartStop ReportDERControl
        SetDERControl"""),
    "S": ("BatterySwapping", "BatterySwap RequestBatterySwap"),
}
V21_RENAMED = {"M": "CertificateManagement"}


def blocks(tag: str) -> dict[str, tuple[str, list[str]]]:
    """{key: (name, actions)}: 1.6 profiles keyed by name, 2.x blocks by letter."""
    if tag == "v16":
        return {name: (name, actions.split()) for name, actions in V16_PROFILES.items()}
    out = {letter: (name, actions.split()) for letter, (name, actions) in V201_BLOCKS.items()}
    if tag == "v21":
        for letter, actions in V21_ADDED.items():
            out[letter][1].extend(actions.split())
        for letter, name in V21_RENAMED.items():
            out[letter] = (name, out[letter][1])
        out.update({letter: (name, actions.split()) for letter, (name, actions) in V21_NEW_BLOCKS.items()})
    return out


def render_profiles(tag: str, header: str, actions: list[str], snake: Callable[[str], str]) -> str:
    table = blocks(tag)
    listed = [a for _, acts in table.values() for a in acts]
    if sorted(listed) != sorted(actions):
        raise SystemExit(f"{tag}: the profile tables must name every action once: "
                         f"unknown {sorted(set(listed) - set(actions))}, missing {sorted(set(actions) - set(listed))}, "
                         f"twice {sorted({a for a in listed if listed.count(a) > 1})}")
    out = [header, "from __future__ import annotations", ""]
    if tag == "v16":
        out.append("#: The feature profiles (and the security extension), by name: their actions.")
    else:
        out.append("#: The functional blocks, by name: their actions. ``LETTERS`` maps A, B, ... to the names.")
    out.append("PROFILES: dict[str, frozenset[str]] = {")
    for _, (name, acts) in table.items():
        out.append(f"    {name!r}: frozenset({{")
        out.extend(f"        {a!r}," for a in sorted(acts))
        out.append("    }),")
    out.append("}")
    out.append("LETTERS: dict[str, str] = {")
    if tag != "v16":
        out.extend(f"    {letter!r}: {name!r}," for letter, (name, _) in table.items())
    out.append("}")
    out.append("#: The method an action's handler has in a handler group (``on_`` + snake_case).")
    out.append("HANDLER_NAMES: dict[str, str] = {")
    out.extend(f"    {a!r}: {'on_' + snake(a)!r}," for a in actions)
    out.append("}")
    out.append("")
    out.append('__all__ = ["PROFILES", "LETTERS", "HANDLER_NAMES"]')
    return "\n".join(out) + "\n"


CALLS_IMPORTS = '''from __future__ import annotations

import datetime
from concurrent.futures import Future
from typing import Any, Protocol, cast

from ocpp_sync import {tag} as m


class Sender(Protocol):
    """What the calls send through: a ChargePoint or a Station."""

    def send(self, message: Any, timeout: float | None = None) -> Any: ...

    def send_async(self, message: Any, timeout: float | None = None) -> Future[Any]: ...
'''

CLASS_DOC = {
    "ChargePointCalls": "The calls a charge point makes to its CSMS in OCPP {version}: ``cp.{tag}.<action>(...)``.",
    "StationCalls": "The calls a CSMS makes to one station in OCPP {version}: ``station.{tag}.<action>(...)``.",
}

CLASS_NOTE = '''
    Each method builds the ``<Action>Request`` from its arguments (required fields
    positional, optional ones keyword-only, the same names as the request's
    attributes; a field named ``timeout`` is ``timeout_``) and sends it with
    ``send(request, timeout=timeout)``: the same validation, errors and return
    value. ``<action>_async`` is ``send_async``: it returns the Future at once.{queued}
    """

    __slots__ = ("_sender",)

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
'''

QUEUED_NOTE = '''
    Transaction messages keep the offline queue's order, so these may raise
    ``ocpp_sync.Queued`` (its ``handle`` gets the response later), as ``send`` does:
    {names}.'''


def render_calls(tag: str, version: str, header: str, requests: dict[str, Any], responses: dict[str, Any],
                 sides: dict[str, list[str]], annotation: Callable[[tuple[Any, ...], str], str],
                 snake: Callable[[str], str]) -> str:
    out = [header, CALLS_IMPORTS.format(tag=tag)]
    for class_name, actions in sides.items():
        queued = sorted(QUEUED[tag] & set(actions)) if class_name == "ChargePointCalls" else []
        out.append("")
        out.append(f"class {class_name}:")
        out.append('    """' + CLASS_DOC[class_name].format(version=version, tag=tag))
        note = QUEUED_NOTE.format(names=", ".join(queued)) if queued else ""
        out.append(CLASS_NOTE.format(queued=note).rstrip("\n"))
        for action in actions:
            out.extend(render_method(action, requests[action], responses.get(action), action in queued,
                                     annotation, snake(action)))
    out.append("")
    out.append('__all__ = ["Sender", "ChargePointCalls", "StationCalls"]')
    return "\n".join(out) + "\n"


def render_method(action: str, request: Any, response: Any, queued: bool,
                  annotation: Callable[[tuple[Any, ...], str], str], name: str) -> list[str]:
    params = {f.py: (f.py + "_" if f.py in RESERVED else f.py) for f in request.fields}
    required = [f"{params[f.py]}: {annotation(f.kind, 'm.')}" for f in request.fields if f.required]
    optional = [f"{params[f.py]}: {annotation(f.kind, 'm.')} | None = None" for f in request.fields
                if not f.required]
    answer = "None" if response is None else f"m.{response.name}"
    sync_type = answer
    build = f"m.{request.name}(" + ", ".join(f"{py}={arg}" for py, arg in params.items()) + ")"
    lines = []
    for method, returns, send in ((name, sync_type, "send"), (name + "_async", f"Future[{answer}]", "send_async")):
        lines.append("")
        lines.append(f"    def {method}(")
        lines.append("        self,")
        lines.extend(f"        {p}," for p in required)
        lines.append("        *,")
        lines.extend(f"        {p}," for p in optional)
        lines.append("        timeout: float | None = None,")
        lines.append(f"    ) -> {returns}:")
        verb = "return the Future of its response" if send == "send_async" else \
            ("block for its response" if response is not None else "write it (a SEND: never answered)")
        if queued and send == "send":
            verb += " (ocpp_sync.Queued if it is kept for later delivery)"
        lines.append(f'        """Build and send the {request.name}; {verb}."""')
        lines.append(f"        return cast({returns!r}, self._sender.{send}({build}, timeout=timeout))")
    return lines
