"""OCPP 2.0.1, station under test: the kit plays the CSMS and the station connects to it."""
from __future__ import annotations

from ocpp_sync.conformance.case import STATION_ROLE, case
from ocpp_sync.conformance.cases._shared import V201
from ocpp_sync.conformance.check import absent_or, field_is, present
from ocpp_sync.conformance.context import Context
from ocpp_sync.conformance.prompts import REBOOT

_NO_ERROR = absent_or("NoError")


def _connectors_reported(ctx: Context, *, or_reconnect: bool = False) -> None:
    """Post-boot: a StatusNotification for every EVSE of the configuration."""
    for evse in range(1, ctx.config.connectors + 1):
        ctx.check(ctx.expect_call("StatusNotification", field_is("$.evseId", evse),
                                  or_reconnect=or_reconnect),
                  ("$.connectorStatus", "Available"))


def _boot_fields(ctx: Context, *, or_reconnect: bool = False) -> None:
    ctx.check(ctx.expect_call("BootNotification", or_reconnect=or_reconnect),
              ("$.reason", present()), ("$.chargingStation.model", present()),
              ("$.chargingStation.vendorName", present()))


@case("TC_B_01_CS", "The station boots after a power cycle and reports every connector",
      versions=V201, role=STATION_ROLE, steps=("reboot", "boot", "status"),
      requirements=("B01.FR.01", "B01.FR.05", "B01.FR.09"), use_cases=("B01",))
def cold_boot(ctx: Context) -> None:
    with ctx.step("reboot"):
        ctx.prompt(REBOOT, f"Power-cycle the charging station {ctx.station_id}")
        ctx.reconnected()
    with ctx.step("boot"):
        _boot_fields(ctx)
    with ctx.step("status"):
        _connectors_reported(ctx)


def _offline_threshold(ctx: Context, value: str) -> None:
    answer = ctx.call("SetVariables", {"setVariableData": [{
        "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"},
        "attributeValue": value, "attributeType": "Actual"}]}).response
    ctx.check(answer, ("$.setVariableResult[0].attributeStatus", "Accepted"),
              ("$.setVariableResult[0].component.name", "OCPPCommCtrlr"),
              ("$.setVariableResult[0].variable.name", "OfflineThreshold"),
              ("$.setVariableResult[0].attributeStatusInfo.reasonCode", _NO_ERROR))


@case("TC_B_06_CS", "The station returns the value of OCPPCommCtrlr.OfflineThreshold",
      versions=V201, role=STATION_ROLE, steps=("configure", "get variables"),
      requirements=("B06.FR.01", "B06.FR.02", "B06.FR.03", "B06.FR.04", "B06.FR.10", "B06.FR.11"),
      use_cases=("B06",))
def get_variables_single(ctx: Context) -> None:
    with ctx.step("configure"):
        _offline_threshold(ctx, "300")
    with ctx.step("get variables"):
        answer = ctx.call("GetVariables", {"getVariableData": [{
            "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"},
            "attributeType": "Actual"}]}).response
        ctx.check(answer, ("$.getVariableResult[0].attributeStatus", "Accepted"),
                  ("$.getVariableResult[0].attributeType", absent_or("Actual")),
                  ("$.getVariableResult[0].attributeValue", "300"),
                  ("$.getVariableResult[0].component.name", "OCPPCommCtrlr"),
                  ("$.getVariableResult[0].variable.name", "OfflineThreshold"),
                  ("$.getVariableResult[0].attributeStatusInfo.reasonCode", _NO_ERROR))


@case("TC_B_09_CS", "The station accepts a new value for OCPPCommCtrlr.OfflineThreshold",
      versions=V201, role=STATION_ROLE, steps=("set variables",),
      requirements=("B05.FR.01", "B05.FR.02", "B05.FR.03", "B05.FR.10", "B05.FR.12"),
      use_cases=("B05",))
def set_variables_single(ctx: Context) -> None:
    with ctx.step("set variables"):
        _offline_threshold(ctx, "300")


@case("TC_B_20_CS", "An idle station accepts a reset, reboots and reports every connector",
      versions=V201, role=STATION_ROLE, steps=("reset", "boot", "status"),
      requirements=("B11.FR.01", "B11.FR.03", "B11.FR.04", "B01.FR.03"), use_cases=("B11",))
def reset_idle(ctx: Context) -> None:
    with ctx.step("reset"):
        ctx.check(ctx.call("Reset", {"type": "OnIdle"}).response, ("$.status", "Accepted"))
    with ctx.step("boot"):
        _boot_fields(ctx, or_reconnect=True)
    with ctx.step("status"):
        _connectors_reported(ctx, or_reconnect=True)
