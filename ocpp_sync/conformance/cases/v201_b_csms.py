"""OCPP 2.0.1 block B (provisioning), CSMS under test: the kit plays the station."""
from __future__ import annotations

from ocpp_sync.conformance.case import CSMS_ROLE, case
from ocpp_sync.conformance.cases._shared import (
    BOOTED,
    V201,
    boot_payload,
    booted,
    get_variables_answer,
    set_variables_answer,
    status_payload,
)
from ocpp_sync.conformance.check import absent_or, present
from ocpp_sync.conformance.config import BOOT_PENDING, BOOT_REJECTED
from ocpp_sync.conformance.context import Context
from ocpp_sync.conformance.prompts import CSMS_ACTION

_ATTRIBUTE_TYPES = absent_or("Actual", "Target", "MinSet", "MaxSet")
_OFFLINE_THRESHOLD = ("OCPPCommCtrlr", "OfflineThreshold")
_REMOTE_START = ("AuthCtrlr", "AuthorizeRemoteStart")


@case("TC_B_01_CSMS", "A station that boots is accepted, reports its connectors and heartbeats",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "heartbeat"),
      requirements=("B01.FR.02",), use_cases=("B01",))
def cold_boot(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("heartbeat"):
        ctx.check(ctx.call("Heartbeat", {}).response, ("$.currentTime", present()))


def _held_back(ctx: Context, status: str) -> None:
    with ctx.step(f"boot {status.lower()}"):
        answer = ctx.call("BootNotification", boot_payload(ctx)).response
        ctx.check(answer, ("$.status", status))
        interval = answer.payload["interval"] or ctx.config.heartbeat_interval
    with ctx.step("boot again"):
        ctx.pause(min(interval, ctx.config.boot_retry_wait))
        answer = ctx.call("BootNotification", boot_payload(ctx)).response
        ctx.check(answer, ("$.status", "Accepted"))
    with ctx.step("status"):
        ctx.call("StatusNotification", status_payload(ctx, ctx.config.evse_id, "Available"))


@case("TC_B_02_CSMS", "A CSMS configured to hold a station back answers Pending, later Accepted",
      versions=V201, role=CSMS_ROLE, steps=("boot pending", "boot again", "status"),
      requirements=("B02.FR.01", "B02.FR.06"), use_cases=("B02",), needs=(BOOT_PENDING,))
def cold_boot_pending(ctx: Context) -> None:
    _held_back(ctx, "Pending")


@case("TC_B_03_CSMS", "A CSMS configured to refuse a station answers Rejected, later Accepted",
      versions=V201, role=CSMS_ROLE, steps=("boot rejected", "boot again", "status"),
      use_cases=("B03",), needs=(BOOT_REJECTED,))
def cold_boot_rejected(ctx: Context) -> None:
    _held_back(ctx, "Rejected")


def _operator(ctx: Context, action: str, what: str) -> None:
    ctx.prompt(CSMS_ACTION + action,
               f"Make the CSMS {what} (station {ctx.station_id})")


@case("TC_B_06_CSMS", "The CSMS reads one variable (OCPPCommCtrlr.OfflineThreshold)",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "get variables"), use_cases=("B06",))
def get_variables_single(ctx: Context) -> None:
    ctx.answer("GetVariables", get_variables_answer({_OFFLINE_THRESHOLD: "300"}))
    booted(ctx)
    with ctx.step("get variables"):
        _operator(ctx, "GetVariables", "get OCPPCommCtrlr.OfflineThreshold")
        request = ctx.expect_call("GetVariables")
        ctx.check(request, ("$.getVariableData[0].component.name", "OCPPCommCtrlr"),
                  ("$.getVariableData[0].variable.name", "OfflineThreshold"),
                  ("$.getVariableData[0].attributeType", _ATTRIBUTE_TYPES))


@case("TC_B_07_CSMS", "The CSMS reads two variables in one request, in any order",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "get variables"),
      requirements=("B06.FR.01", "B06.FR.02", "B06.FR.03"), use_cases=("B06",))
def get_variables_multiple(ctx: Context) -> None:
    ctx.answer("GetVariables", get_variables_answer({_OFFLINE_THRESHOLD: "300",
                                                     _REMOTE_START: "true"}))
    booted(ctx)
    with ctx.step("get variables"):
        _operator(ctx, "GetVariables",
                  "get OCPPCommCtrlr.OfflineThreshold and AuthCtrlr.AuthorizeRemoteStart")
        request = ctx.expect_call("GetVariables")
        for component, variable in (_OFFLINE_THRESHOLD, _REMOTE_START):
            ctx.find(request, "$.getVariableData", ("$.component.name", component),
                     ("$.variable.name", variable), ("$.attributeType", _ATTRIBUTE_TYPES))


@case("TC_B_09_CSMS", "The CSMS sets one variable (OCPPCommCtrlr.OfflineThreshold)",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "set variables"), use_cases=("B05",))
def set_variables_single(ctx: Context) -> None:
    ctx.answer("SetVariables", set_variables_answer)
    booted(ctx)
    with ctx.step("set variables"):
        _operator(ctx, "SetVariables", "set OCPPCommCtrlr.OfflineThreshold (to any value)")
        request = ctx.expect_call("SetVariables")
        ctx.find(request, "$.setVariableData", ("$.component.name", "OCPPCommCtrlr"),
                 ("$.variable.name", "OfflineThreshold"), ("$.attributeValue", present()),
                 ("$.attributeType", _ATTRIBUTE_TYPES))


@case("TC_B_20_CSMS", "The CSMS resets an idle station, then accepts its boot after the reset",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "reset", "boot after reset"),
      requirements=("B11.FR.04",), use_cases=("B11",))
def reset_idle(ctx: Context) -> None:
    ctx.answer("Reset", {"status": "Accepted"})
    booted(ctx)
    with ctx.step("reset"):
        _operator(ctx, "Reset", "reset the station (type OnIdle)")
        ctx.check(ctx.expect_call("Reset"), ("$.type", "OnIdle"))
    with ctx.step("boot after reset"):
        ctx.reconnected()
        answer = ctx.call("BootNotification", boot_payload(ctx, "RemoteReset")).response
        ctx.check(answer, ("$.status", "Accepted"))
        ctx.call("StatusNotification", status_payload(ctx, ctx.config.evse_id, "Available"))
