#!/usr/bin/env python3
"""Generate ocpp_sync/v16, v201 and v21 from the official OCPP JSON schemas.

Usage:
    python tools/generate_messages.py [--schemas DIR] [--out DIR] [--check]

DIR holds v16/, v201/ and v21/ as published by the Open Charge Alliance (the
project keeps them outside the repository, in ../shared/ocpp-schemas; the PyPI
package ``ocpp`` ships the same files). Only protocol facts are taken from the
schemas: names, types, enum values and limits; their prose is left behind.

Each version's package gets its messages (__init__.py), typed per-action calls
(calls.py) and its feature profiles or functional blocks (profiles.py); the last
two are made by tools/generate_actions.py.

--check compares the output with the committed files and exits 1 on a difference.
"""
from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from pathlib import Path

import generate_actions

VERSIONS = {
    "v16": ("1.6", "ocpp1.6"),
    "v201": ("2.0.1", "ocpp2.0.1"),
    "v21": ("2.1", "ocpp2.1"),
}

# Which actions the CSMS sends; every other action is sent by the charging
# station, and DataTransfer goes both ways.
CSMS_TO_CS = {
    "v16": """CancelReservation CertificateSigned ChangeAvailability ChangeConfiguration ClearCache
        ClearChargingProfile DataTransfer DeleteCertificate ExtendedTriggerMessage GetCompositeSchedule
        GetConfiguration GetDiagnostics GetInstalledCertificateIds GetLocalListVersion GetLog
        InstallCertificate RemoteStartTransaction RemoteStopTransaction ReserveNow Reset SendLocalList
        SetChargingProfile SignedUpdateFirmware TriggerMessage UnlockConnector UpdateFirmware""",
    "v201": """CancelReservation CertificateSigned ChangeAvailability ClearCache ClearChargingProfile
        ClearDisplayMessage ClearVariableMonitoring CostUpdated CustomerInformation DataTransfer
        DeleteCertificate GetBaseReport GetChargingProfiles GetCompositeSchedule GetDisplayMessages
        GetInstalledCertificateIds GetLocalListVersion GetLog GetMonitoringReport GetReport
        GetTransactionStatus GetVariables InstallCertificate PublishFirmware RequestStartTransaction
        RequestStopTransaction ReserveNow Reset SendLocalList SetChargingProfile SetDisplayMessage
        SetMonitoringBase SetMonitoringLevel SetNetworkProfile SetVariableMonitoring SetVariables
        TriggerMessage UnlockConnector UnpublishFirmware UpdateFirmware""",
    "v21": """AFRRSignal AdjustPeriodicEventStream CancelReservation CertificateSigned ChangeAvailability
        ChangeTransactionTariff ClearCache ClearChargingProfile ClearDERControl ClearDisplayMessage
        ClearTariffs ClearVariableMonitoring CostUpdated CustomerInformation DataTransfer DeleteCertificate
        GetBaseReport GetChargingProfiles GetCompositeSchedule GetDERControl GetDisplayMessages
        GetInstalledCertificateIds GetLocalListVersion GetLog GetMonitoringReport GetPeriodicEventStream
        GetReport GetTariffs GetTransactionStatus GetVariables InstallCertificate
        NotifyAllowedEnergyTransfer NotifyWebPaymentStarted PublishFirmware RequestBatterySwap
        RequestStartTransaction RequestStopTransaction ReserveNow Reset SendLocalList SetChargingProfile
        SetDERControl SetDefaultTariff SetDisplayMessage SetMonitoringBase SetMonitoringLevel
        SetNetworkProfile SetVariableMonitoring SetVariables TriggerMessage UnlockConnector
        UnpublishFirmware UpdateDynamicSchedule UpdateFirmware UsePriorityCharging""",
}

# OCPP 1.6 schemas define most enums and objects inline, without names; these
# are the type names the 1.6 specification gives them. Keys are
# "<schema file stem>.<property path>" or a bare property name.
V16_TYPE_NAMES = {
    "idTagInfo.status": "AuthorizationStatus",
    "BootNotificationResponse.status": "RegistrationStatus",
    "CancelReservationResponse.status": "CancelReservationStatus",
    "ClearCacheResponse.status": "ClearCacheStatus",
    "GetCompositeScheduleResponse.status": "GetCompositeScheduleStatus",
    "RemoteStartTransactionResponse.status": "RemoteStartStopStatus",
    "RemoteStopTransactionResponse.status": "RemoteStartStopStatus",
    "ResetResponse.status": "ResetStatus",
    "ChangeAvailability.type": "AvailabilityType",
    "ChangeAvailabilityResponse.status": "AvailabilityStatus",
    "ChangeConfigurationResponse.status": "ConfigurationStatus",
    "chargingProfilePurpose": "ChargingProfilePurposeType",
    "ClearChargingProfileResponse.status": "ClearChargingProfileStatus",
    "DataTransferResponse.status": "DataTransferStatus",
    "DiagnosticsStatusNotification.status": "DiagnosticsStatus",
    "FirmwareStatusNotification.status": "FirmwareStatus",
    "chargingRateUnit": "ChargingRateUnitType",
    "context": "ReadingContext",
    "format": "ValueFormat",
    "measurand": "Measurand",
    "phase": "Phase",
    "location": "Location",
    "unit": "UnitOfMeasure",
    "chargingProfileKind": "ChargingProfileKindType",
    "recurrencyKind": "RecurrencyKindType",
    "ReserveNowResponse.status": "ReservationStatus",
    "Reset.type": "ResetType",
    "SendLocalList.updateType": "UpdateType",
    "SendLocalListResponse.status": "UpdateStatus",
    "SetChargingProfileResponse.status": "ChargingProfileStatus",
    "StatusNotification.errorCode": "ChargePointErrorCode",
    "StatusNotification.status": "ChargePointStatus",
    "StopTransaction.reason": "Reason",
    "TriggerMessage.requestedMessage": "MessageTrigger",
    "TriggerMessageResponse.status": "TriggerMessageStatus",
    "UnlockConnectorResponse.status": "UnlockStatus",
    "idTagInfo": "IdTagInfo",
    "chargingSchedule": "ChargingSchedule",
    "chargingSchedulePeriod": "ChargingSchedulePeriod",
    "configurationKey": "KeyValue",
    "meterValue": "MeterValue",
    "transactionData": "MeterValue",
    "sampledValue": "SampledValue",
    "chargingProfile": "ChargingProfile",
    "csChargingProfiles": "ChargingProfile",
    "localAuthorizationList": "AuthorizationData",
}

HEADER = '''"""OCPP {version} messages, generated by tools/generate_messages.py from the official JSON schemas.

Do not edit: change the generator and run it again. Each ``<Action>Request`` and
``<Action>Response`` is an attrs class with snake_case attributes; the schema's
wire names and limits sit in each field's metadata, where ``ocpp_sync.to_payload``
and ``ocpp_sync.from_payload`` read them.{note}
"""
# fmt: off
from __future__ import annotations

import datetime
from typing import Any

import attrs

from ocpp_sync.protocol import spec as s

VERSION = "{version}"
SUBPROTOCOL = "{subprotocol}"
'''

V16_NOTE = """

OCPP 1.6 schemas leave most types unnamed; they carry the names the 1.6
specification uses. Where two schemas define a same-named type differently (the
unit list of StopTransaction's sampled values lacks "Hertz"), the second one is
prefixed with its action: ``StopTransactionMeterValue``."""


def snake_case(name: str) -> str:
    """chargePointVendor -> charge_point_vendor; evMinV2XEnergyRequest -> ev_min_v2x_energy_request."""
    s = re.sub(r"([A-Z]{2,})s(?=[A-Z_]|$)", lambda m: m.group(1) + "S", name)
    s = re.sub(r"(?<=[a-z]{2})(?=[A-Z])", "_", s)
    s = re.sub(r"(?<=[A-Za-z0-9][a-z])(?=[A-Z][a-z])", "_", s)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    s = re.sub(r"(?<=[0-9])(?=[A-Z][a-z])", "_", s)
    s = re.sub(r"(?<=[a-z][0-9])(?=[A-Z])", "_", s)
    s = re.sub(r"_+", "_", s).lower()
    if keyword.iskeyword(s) or s in ("additional_properties",):
        s += "_"
    return s


def member_name(value: str) -> str:
    """Accepted -> ACCEPTED; Energy.Active.Import.Register -> ENERGY_ACTIVE_IMPORT_REGISTER."""
    words = re.split(r"[^A-Za-z0-9]+", value)
    return re.sub(r"_+", "_", "_".join(snake_case(w).upper() for w in words if w)).strip("_")


class EnumDef:
    def __init__(self, name: str, values: tuple[str, ...]) -> None:
        self.name = name
        self.values = values

    def key(self) -> tuple:
        return ("enum", self.values)


class ClassDef:
    def __init__(self, name: str, fields: list[FieldDef], open_object: bool) -> None:
        self.name = name
        self.fields = fields
        self.open_object = open_object

    def key(self) -> tuple:
        return ("class", tuple(f.key() for f in self.fields), self.open_object)


class FieldDef:
    def __init__(self, wire: str, kind: tuple, required: bool) -> None:
        self.wire = wire
        self.py = snake_case(wire)
        self.kind = kind
        self.required = required

    def key(self) -> tuple:
        return (self.wire, kind_key(self.kind), self.required)


def kind_key(kind: tuple) -> tuple:
    if kind[0] in ("enum", "object"):
        return (kind[0], kind[1].name)
    if kind[0] == "array":
        return ("array", kind_key(kind[1])) + kind[2:]
    return kind


class Namespace:
    """The named types of one version; same name and shape are one type."""

    def __init__(self) -> None:
        self.defs: dict[str, object] = {}
        self.order: list[object] = []

    def add(self, d, action: str):
        existing = self.defs.get(d.name)
        if existing is not None:
            if existing.key() == d.key():
                return existing
            d.name = action + d.name
            return self.add(d, action)
        self.defs[d.name] = d
        self.order.append(d)
        return d


class SchemaReader:
    def __init__(self, folder: str, ns: Namespace) -> None:
        self.folder = folder
        self.ns = ns

    def message(self, stem: str, schema: dict, class_name: str, action: str) -> ClassDef:
        self.stem = stem
        self.action = action
        self.definitions = schema.get("definitions", {})
        fields = self.fields(schema, "")
        msg = ClassDef(class_name, fields, open_object=False)
        return msg

    def fields(self, schema: dict, path: str) -> list[FieldDef]:
        required = set(schema.get("required", ()))
        out = []
        for wire, sub in schema.get("properties", {}).items():
            kind = self.kind(sub, f"{path}.{wire}" if path else wire)
            out.append(FieldDef(wire, kind, wire in required))
        names = [f.py for f in out]
        if len(set(names)) != len(names):
            raise SystemExit(f"{self.stem}: attribute names collide: {names}")
        return out

    def kind(self, schema: dict, path: str) -> tuple:
        ref_name = None
        if "$ref" in schema:
            ref_name = schema["$ref"].rsplit("/", 1)[1]
            schema = self.definitions[ref_name]
        t = schema.get("type")
        if "enum" in schema:
            name = ref_name or self.inline_name(path)
            return ("enum", self.ns.add(EnumDef(name, tuple(schema["enum"])), self.action))
        if t == "object":
            name = ref_name or self.inline_name(path)
            open_object = schema.get("additionalProperties", True) is not False
            cls = ClassDef(name, self.fields(schema, path), open_object)
            return ("object", self.ns.add(cls, self.action))
        if t == "array":
            item = self.kind(schema["items"], path)
            return ("array", item, schema.get("minItems"), schema.get("maxItems"))
        if t == "string":
            if schema.get("format") == "date-time":
                return ("datetime",)
            return ("string", schema.get("maxLength"))
        if t == "integer":
            limits = (schema.get("minimum"), schema.get("maximum"))
            return ("integer",) + tuple(None if x is None else int(x) for x in limits)
        if t == "number":
            return ("number", schema.get("minimum"), schema.get("maximum"), schema.get("multipleOf"))
        if t == "boolean":
            return ("boolean",)
        if t is None:
            return ("any",)
        raise SystemExit(f"{self.stem}.{path}: unsupported schema type {t!r}")

    def inline_name(self, path: str) -> str:
        last = path.rsplit(".", 1)[-1]
        parent_last = ".".join(path.rsplit(".", 2)[-2:])
        for key in (f"{self.stem}.{path}", parent_last, last):
            if key in V16_TYPE_NAMES:
                return V16_TYPE_NAMES[key]
        raise SystemExit(f"no type name for {self.stem}.{path}: add it to V16_TYPE_NAMES")


def read_version(folder: Path, tag: str):
    ns = Namespace()
    reader = SchemaReader(tag, ns)
    requests: dict[str, ClassDef] = {}
    responses: dict[str, ClassDef] = {}
    for path in sorted(folder.glob("*.json")):
        stem = path.stem
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
        if stem.endswith("Response"):
            action, table, suffix = stem[: -len("Response")], responses, "Response"
        else:
            action = stem[: -len("Request")] if stem.endswith("Request") else stem
            table, suffix = requests, "Request"
        table[action] = reader.message(stem, schema, action + suffix, action)
    return ns, requests, responses


def render_kind(kind: tuple) -> str:
    tag = kind[0]
    if tag == "string":
        return "s.String()" if kind[1] is None else f"s.String(max_length={kind[1]})"
    if tag in ("integer", "number"):
        names = ("minimum", "maximum", "multiple_of")
        args = ", ".join(f"{n}={v!r}" for n, v in zip(names, kind[1:], strict=False) if v is not None)
        return f"s.{tag.capitalize()}({args})"
    if tag == "boolean":
        return "s.Boolean()"
    if tag == "datetime":
        return "s.DateTime()"
    if tag == "any":
        return "s.AnyValue()"
    if tag == "enum":
        return f"s.EnumOf({kind[1].name})"
    if tag == "object":
        return f"s.Object({kind[1].name})"
    args = [render_kind(kind[1])]
    if kind[2] is not None:
        args.append(f"min_items={kind[2]}")
    if kind[3] is not None:
        args.append(f"max_items={kind[3]}")
    return f"s.Array({', '.join(args)})"


def annotation(kind: tuple, prefix: str = "") -> str:
    """The type hint of a field; ``prefix`` qualifies the generated names (``m.`` outside the module)."""
    tag = kind[0]
    simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
              "datetime": "datetime.datetime", "any": "Any"}
    if tag in simple:
        return simple[tag]
    if tag == "enum":
        return f"{prefix}{kind[1].name} | str"
    if tag == "object":
        return prefix + kind[1].name
    return f"list[{annotation(kind[1], prefix)}]"


def render_enum(e: EnumDef) -> list[str]:
    lines = [f"class {e.name}(s.StrEnum):"]
    seen = set()
    for v in e.values:
        m = member_name(v)
        if m in seen or not m.isidentifier():
            raise SystemExit(f"{e.name}: cannot name member {v!r}")
        seen.add(m)
        lines.append(f"    {m} = {v!r}")
    return lines + ["", ""]


def render_class(c: ClassDef) -> list[str]:
    lines = ["@attrs.define(kw_only=True)", f"class {c.name}:"]
    for f in c.fields:
        ann = annotation(f.kind)
        meta = f"metadata=s.meta({f.wire!r}, {render_kind(f.kind)}, required={f.required})"
        if f.required:
            lines.append(f"    {f.py}: {ann} = attrs.field({meta})")
        else:
            lines.append(f"    {f.py}: {ann} | None = attrs.field(default=None, {meta})")
    if c.open_object:
        lines.append("    additional_properties: dict[str, Any] | None = attrs.field(default=None, metadata=s.EXTRA)")
    if len(lines) == 2:
        lines.append("    pass")
    return lines + ["", ""]


PART_HEADER = '''"""OCPP {version} {what}, generated by tools/generate_messages.py from the official JSON schemas.

Do not edit: change the generator (tools/generate_actions.py) and run it again.
"""
# fmt: off'''


def render_version(tag: str, folder: Path) -> dict[str, str]:
    """The files of one version's package: {"__init__.py": messages, "calls.py": ..., "profiles.py": ...}."""
    version = VERSIONS[tag][0]
    ns, requests, responses = read_version(folder, tag)
    messages = render_messages(tag, ns, requests, responses)
    csms = set(CSMS_TO_CS[tag].split())
    actions = sorted(requests)
    sides = {"ChargePointCalls": [a for a in actions if a not in csms or a == "DataTransfer"],
             "StationCalls": sorted(csms)}
    calls = generate_actions.render_calls(
        tag, version, PART_HEADER.format(version=version, what="per-action calls"), requests, responses,
        sides, annotation, snake_case)
    profiles = generate_actions.render_profiles(
        tag, PART_HEADER.format(version=version, what="feature profiles" if tag == "v16" else "functional blocks"),
        actions, snake_case)
    return {"__init__.py": messages, "calls.py": calls, "profiles.py": profiles}


def render_messages(tag: str, ns: Namespace, requests: dict[str, ClassDef], responses: dict[str, ClassDef]) -> str:
    version, subprotocol = VERSIONS[tag]
    out = [HEADER.format(version=version, subprotocol=subprotocol,
                         note=V16_NOTE if tag == "v16" else "")]
    enums = [d for d in ns.order if isinstance(d, EnumDef)]
    classes = [d for d in ns.order if isinstance(d, ClassDef)]
    out.append("")
    for e in sorted(enums, key=lambda d: d.name):
        out.extend(render_enum(e))
    for c in classes:
        out.extend(render_class(c))
    messages = list(requests.values()) + list(responses.values())
    for m in sorted(messages, key=lambda d: d.name):
        out.extend(render_class(m))
    csms = set(CSMS_TO_CS[tag].split())
    actions = sorted(requests)
    if not csms <= set(actions):
        raise SystemExit(f"{tag}: unknown actions in CSMS_TO_CS: {csms - set(actions)}")
    out.append("REQUESTS: dict[str, type] = {")
    out.extend(f"    {a!r}: {requests[a].name}," for a in actions)
    out.append("}")
    out.append("RESPONSES: dict[str, type] = {")
    out.extend(f"    {a!r}: {responses[a].name}," for a in sorted(responses))
    out.append("}")
    out.append("CSMS_TO_CS = frozenset({")
    out.extend(f"    {a!r}," for a in sorted(csms))
    out.append("})")
    out.append("CS_TO_CSMS = frozenset({")
    out.extend(f"    {a!r}," for a in actions if a not in csms or a == "DataTransfer")
    out.append("})")
    names = [d.name for d in enums] + [d.name for d in classes] + [m.name for m in messages]
    out.append("")
    out.append("__all__ = [")
    out.append('    "VERSION", "SUBPROTOCOL", "REQUESTS", "RESPONSES", "CSMS_TO_CS", "CS_TO_CSMS",')
    out.extend(f"    {n!r}," for n in sorted(names))
    out.append("]")
    return "\n".join(out) + "\n"


def default_schema_dir() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    candidate = here.parent / "shared" / "ocpp-schemas"
    if candidate.is_dir():
        return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=Path, default=default_schema_dir(),
                        help="folder with v16/, v201/, v21/ (default: ../shared/ocpp-schemas)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "ocpp_sync")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if args.schemas is None:
        parser.error("no schema folder found; pass --schemas")
    changed = []
    for tag in VERSIONS:
        for name, text in render_version(tag, args.schemas / tag).items():
            target = args.out / tag / name
            if args.check:
                if not target.exists() or target.read_text(encoding="utf-8") != text:
                    changed.append(str(target))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if changed:
        print("out of date:", *changed, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
