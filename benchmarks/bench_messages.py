#!/usr/bin/env python3
"""Cost per message of ocpp_sync's validating conversion, against jsonschema validation.

Usage: python benchmarks/bench_messages.py [--quick]

For each message: from_payload (validate and build), to_payload (validate and
serialise a built object), both, cattrs' dispatch of the same hook
(``converter(version).structure``), and jsonschema on the same payload: the
schema's own draft validator, compiled once, with and without a FormatChecker
(the ``ocpp`` package uses Draft4Validator without one). The schemas are read
from ../shared/ocpp-schemas, else from the installed ``ocpp`` package.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from ocpp_sync import from_payload, to_payload, v16, v201
from ocpp_sync.protocol.codec import converter

REPO = Path(__file__).resolve().parent.parent
TAGS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


def schema_file(version: str, name: str) -> Path:
    shared = REPO.parent / "shared" / "ocpp-schemas" / TAGS[version] / f"{name}.json"
    if shared.exists():
        return shared
    spec = importlib.util.find_spec("ocpp")
    if spec is not None and spec.submodule_search_locations:
        packaged = Path(list(spec.submodule_search_locations)[0]) / TAGS[version] / "schemas" / f"{name}.json"
        if packaged.exists():
            return packaged
    raise SystemExit("no OCPP schemas: need ../shared/ocpp-schemas or `pip install ocpp`")


def format_checker() -> tuple[jsonschema.FormatChecker, str]:
    checker = jsonschema.FormatChecker()
    if "date-time" in checker.checkers:
        return checker, "jsonschema's own (rfc3339-validator)"

    def is_date_time(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        try:
            return _dt.datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False

    checker.checks("date-time")(is_date_time)
    return checker, "datetime.fromisoformat (rfc3339-validator not installed)"


# -- the payloads ---------------------------------------------------------------

def boot_16() -> dict[str, Any]:
    return {"chargePointVendor": "ACME", "chargePointModel": "X1-22kW", "chargePointSerialNumber": "SN-0001",
            "chargeBoxSerialNumber": "CB-0001", "firmwareVersion": "1.2.3", "iccid": "8931440400012345678",
            "imsi": "262011234567890", "meterType": "EM-3", "meterSerialNumber": "M-42"}


def meter_values_16(n: int = 10) -> dict[str, Any]:
    measurands = ["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage",
                  "Temperature", "SoC", "Frequency", "Power.Factor", "Current.Offered", "Power.Offered"]
    units = ["Wh", "W", "A", "V", "Celsius", "Percent", None, None, "A", "W"]
    sampled = []
    for i in range(n):
        value = {"value": f"{1234.5 + i:.1f}", "context": "Sample.Periodic", "format": "Raw",
                 "measurand": measurands[i % 10], "location": "Outlet"}
        if i % 3 == 2:
            value["phase"] = "L1"
        if units[i % 10]:
            value["unit"] = units[i % 10]
        sampled.append(value)
    return {"connectorId": 1, "transactionId": 42,
            "meterValue": [{"timestamp": "2024-05-06T07:08:09.123Z", "sampledValue": sampled}]}


def transaction_event_201(n: int = 10) -> dict[str, Any]:
    measurands = ["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage",
                  "Power.Reactive.Import", "SoC", "Frequency", "Power.Factor", "Current.Offered", "Power.Offered"]
    sampled = [{"value": 1234.5 + i, "context": "Sample.Periodic", "measurand": measurands[i % 10],
                "location": "Outlet", "unitOfMeasure": {"unit": "Wh", "multiplier": 0}} for i in range(n)]
    for i in range(0, n, 3):
        sampled[i]["phase"] = "L1-N"
    return {"eventType": "Updated", "timestamp": "2024-05-06T07:08:09.123Z", "triggerReason": "MeterValuePeriodic",
            "seqNo": 17, "offline": False, "numberOfPhasesUsed": 3, "cableMaxCurrent": 32,
            "transactionInfo": {"transactionId": "tx-0001-abcdef", "chargingState": "Charging",
                                "timeSpentCharging": 600},
            "idToken": {"idToken": "04A1B2C3D4", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": "2024-05-06T07:08:09.123Z", "sampledValue": sampled}]}


CASES = [
    ("1.6 BootNotification", "1.6", "BootNotification", v16.BootNotificationRequest, boot_16),
    ("1.6 MeterValues x10", "1.6", "MeterValues", v16.MeterValuesRequest, meter_values_16),
    ("2.0.1 TransactionEvent x10", "2.0.1", "TransactionEventRequest", v201.TransactionEventRequest,
     transaction_event_201),
]


# -- timing -----------------------------------------------------------------------

def per_call_us(fn: Callable[[], Any], budget: float) -> float:
    """Best of five runs, each sized to take about ``budget`` seconds."""
    timer = timeit.Timer(fn)
    number, elapsed = 1, 0.0
    while elapsed < budget / 5:
        number *= 2
        elapsed = timer.timeit(number)
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def methods(cls: type, payload: dict[str, Any], msg: Any, conv: Any, draft: str,
            with_formats: Any, without_formats: Any) -> list[tuple[str, Callable[[], Any]]]:
    """The rows of one message; the fifth is the reference the ratio divides."""
    return [
        ("from_payload (validate + build)", lambda: from_payload(cls, payload)),
        ("to_payload (validate + serialise)", lambda: to_payload(msg)),
        ("from_payload + to_payload", lambda: to_payload(from_payload(cls, payload))),
        ("cattrs converter.structure (same hook)", lambda: conv.structure(payload, cls)),
        (f"jsonschema {draft} + FormatChecker", lambda: with_formats.validate(payload)),
        (f"jsonschema {draft}, no formats", lambda: without_formats.validate(payload)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    args = parser.parse_args(argv)
    budget = 0.1 if args.quick else 0.5
    checker, checker_name = format_checker()

    print(f"python {platform.python_version()}, jsonschema {importlib.metadata.version('jsonschema')}, "
          f"ocpp_sync {importlib.metadata.version('ocpp_sync')}; date-time check: {checker_name}")
    header = f"{'message':28} {'method':44} {'us/msg':>9} {'jsonschema+fc / this':>21}"
    print(header)
    print("-" * len(header))
    for label, version, schema_name, cls, make in CASES:
        payload = make()
        schema = json.loads(schema_file(version, schema_name).read_text(encoding="utf-8-sig"))
        draft = jsonschema.validators.validator_for(schema)
        with_formats = draft(schema, format_checker=checker)
        without_formats = draft(schema)
        with_formats.validate(payload)  # the payload is valid, and the validators are warm
        msg = from_payload(cls, payload)
        assert to_payload(msg) == json.loads(json.dumps(payload)), "payload does not round-trip"

        rows = methods(cls, payload, msg, converter(version), draft.__name__, with_formats, without_formats)
        figures = [(name, per_call_us(fn, budget)) for name, fn in rows]
        reference = figures[4][1]
        for name, us in figures:
            print(f"{label:28} {name:44} {us:9.1f} {reference / us:20.1f}x")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
