"""Payloads and reusable states the cases of several blocks share."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ocpp_sync.conformance.check import present, satisfies
from ocpp_sync.conformance.context import Context

V16 = ("1.6",)
V201 = ("2.0.1",)
#: The steps of the reusable state Booted, for a kit that plays the station.
BOOTED = ("boot", "status")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def boot_payload(ctx: Context, reason: str = "PowerUp") -> dict[str, Any]:
    if ctx.version == "1.6":
        return {"chargePointVendor": ctx.config.vendor, "chargePointModel": ctx.config.model}
    return {"reason": reason, "chargingStation": {"model": ctx.config.model,
                                                  "vendorName": ctx.config.vendor}}


def status_payload(ctx: Context, evse: int, status: str) -> dict[str, Any]:
    if ctx.version == "1.6":
        return {"connectorId": evse, "errorCode": "NoError", "status": status, "timestamp": now()}
    return {"timestamp": now(), "connectorStatus": status, "evseId": evse,
            "connectorId": ctx.config.connector_id if evse == ctx.config.evse_id else 1}


def booted(ctx: Context, reason: str = "PowerUp") -> None:
    """The reusable state Booted: boot Accepted, then the state of every connector reported."""
    with ctx.step("boot"):
        answer = ctx.call("BootNotification", boot_payload(ctx, reason)).response
        ctx.check(answer, ("$.status", "Accepted"),
                  ("$.interval", satisfies(lambda v: v >= 0, "an interval >= 0")),
                  ("$.currentTime", present()))
    with ctx.step("status"):
        for evse in range(1, ctx.config.connectors + 1):
            ctx.call("StatusNotification", status_payload(ctx, evse, "Available"))


def id_token(ctx: Context) -> dict[str, Any]:
    return {"idToken": ctx.config.valid_id_token, "type": ctx.config.valid_id_token_type}


def get_variables_answer(values: dict[tuple[str, str], str]) -> Any:
    """A kit station's GetVariables answer: the ``values`` it knows, UnknownVariable otherwise."""
    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in payload.get("getVariableData", []):
            key = (item["component"]["name"], item["variable"]["name"])
            result = {"attributeStatus": "Accepted" if key in values else "UnknownVariable",
                      "attributeType": item.get("attributeType", "Actual"),
                      "component": item["component"], "variable": item["variable"]}
            if key in values:
                result["attributeValue"] = values[key]
            results.append(result)
        return {"getVariableResult": results}
    return answer


def set_variables_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """A kit station's SetVariables answer: every value Accepted."""
    return {"setVariableResult": [
        {"attributeStatus": "Accepted", "attributeType": item.get("attributeType", "Actual"),
         "component": item["component"], "variable": item["variable"]}
        for item in payload.get("setVariableData", [])]}
