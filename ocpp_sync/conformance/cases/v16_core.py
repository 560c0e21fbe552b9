"""OCPP 1.6 Core, both roles."""
from __future__ import annotations

from ocpp_sync.conformance.case import CSMS_ROLE, STATION_ROLE, case
from ocpp_sync.conformance.cases._shared import V16, booted
from ocpp_sync.conformance.check import field_is, one_of, present
from ocpp_sync.conformance.context import Context
from ocpp_sync.conformance.prompts import REBOOT


@case("TC_001_CSMS", "A charge point that boots is accepted, reports its connectors and heartbeats",
      versions=V16, role=CSMS_ROLE, steps=("boot", "status", "heartbeat"))
def cold_boot_csms(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("heartbeat"):
        ctx.check(ctx.call("Heartbeat", {}).response, ("$.currentTime", present()))


@case("TC_001_CS", "A charge point boots after a power cycle and reports every connector",
      versions=V16, role=STATION_ROLE, steps=("reboot", "boot", "status"))
def cold_boot_station(ctx: Context) -> None:
    with ctx.step("reboot"):
        ctx.prompt(REBOOT, f"Power-cycle the charge point {ctx.station_id}")
        ctx.reconnected()
    with ctx.step("boot"):
        ctx.check(ctx.expect_call("BootNotification"), ("$.chargePointVendor", present()),
                  ("$.chargePointModel", present()))
    with ctx.step("status"):
        for connector in range(1, ctx.config.connectors + 1):
            ctx.check(ctx.expect_call("StatusNotification", field_is("$.connectorId", connector)),
                      ("$.status", one_of("Available", "Preparing", "Unavailable")))
