"""OCPP 1.6 Core, both roles."""
from __future__ import annotations

from typing import Any

from ocpp_sync.conformance.case import CSMS_ROLE, STATION_ROLE, case
from ocpp_sync.conformance.cases._shared import V16, booted, now, status_payload
from ocpp_sync.conformance.check import field_is, one_of, present, satisfies
from ocpp_sync.conformance.context import Context
from ocpp_sync.conformance.prompts import CSMS_ACTION, PLUG_IN, PRESENT_CARD, REBOOT


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


def _charging_started(ctx: Context) -> None:
    """A 1.6 station starts a transaction for the configured tag and says it is charging."""
    ctx.check(ctx.expect_call("StartTransaction"), ("$.idTag", ctx.config.valid_id_token),
              ("$.connectorId", ctx.config.connector_id))
    ctx.expect_call("StatusNotification", field_is("$.status", "Charging"))


@case("TC_003_CS", "The cable first, then the card: the charge point authorizes and starts charging",
      versions=V16, role=STATION_ROLE, steps=("plug in", "authorize", "start"))
def plugin_first_station(ctx: Context) -> None:
    with ctx.step("plug in"):
        ctx.prompt(PLUG_IN, f"Plug the EV cable into connector {ctx.config.connector_id}")
        ctx.expect_call("StatusNotification", field_is("$.status", "Preparing"))
    with ctx.step("authorize"):
        ctx.prompt(PRESENT_CARD, f"Present the card {ctx.config.valid_id_token}")
        ctx.check(ctx.expect_call("Authorize"), ("$.idTag", ctx.config.valid_id_token))
    with ctx.step("start"):
        _charging_started(ctx)


@case("TC_004_1_CS", "The card first, then the cable: the charge point starts charging",
      versions=V16, role=STATION_ROLE, steps=("authorize", "plug in"))
def identification_first_station(ctx: Context) -> None:
    with ctx.step("authorize"):
        ctx.prompt(PRESENT_CARD, f"Present the card {ctx.config.valid_id_token}")
        ctx.check(ctx.expect_call("Authorize"), ("$.idTag", ctx.config.valid_id_token))
    with ctx.step("plug in"):
        ctx.prompt(PLUG_IN, f"Plug the EV cable into connector {ctx.config.connector_id}")
        _charging_started(ctx)


def _start(ctx: Context) -> Any:
    """StartTransaction for the configured tag, then Charging; the central system's transaction id."""
    answer = ctx.call("StartTransaction", {
        "connectorId": ctx.config.connector_id, "idTag": ctx.config.valid_id_token,
        "meterStart": 0, "timestamp": now()}).response
    ctx.check(answer, ("$.idTagInfo.status", "Accepted"),
              ("$.transactionId", satisfies(lambda v: isinstance(v, int), "an integer")))
    ctx.call("StatusNotification", status_payload(ctx, ctx.config.connector_id, "Charging"))
    return answer.payload["transactionId"]


def _authorized(ctx: Context) -> None:
    answer = ctx.call("Authorize", {"idTag": ctx.config.valid_id_token}).response
    ctx.check(answer, ("$.idTagInfo.status", "Accepted"))


@case("TC_004_1_CSMS", "The card first: the central system authorizes the tag and its transaction",
      versions=V16, role=CSMS_ROLE, steps=("boot", "status", "authorize", "start"))
def identification_first_csms(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("authorize"):
        _authorized(ctx)
    with ctx.step("start"):
        ctx.call("StatusNotification", status_payload(ctx, ctx.config.connector_id, "Preparing"))
        _start(ctx)


@case("TC_010_CSMS", "The cable first, then a remote start from the central system",
      versions=V16, role=CSMS_ROLE, steps=("boot", "status", "plug in", "remote start", "start"))
def remote_start_csms(ctx: Context) -> None:
    ctx.answer("RemoteStartTransaction", {"status": "Accepted"})
    booted(ctx)
    with ctx.step("plug in"):
        ctx.call("StatusNotification", status_payload(ctx, ctx.config.connector_id, "Preparing"))
    with ctx.step("remote start"):
        ctx.prompt(CSMS_ACTION + "RemoteStartTransaction",
                   f"Make the central system start a transaction on {ctx.station_id} for "
                   f"{ctx.config.valid_id_token}")
        ctx.check(ctx.expect_call("RemoteStartTransaction"),
                  ("$.idTag", ctx.config.valid_id_token))
    with ctx.step("start"):
        _authorized(ctx)
        _start(ctx)


@case("TC_012_CS", "The central system stops a charging session remotely",
      versions=V16, role=STATION_ROLE, steps=("charging", "remote stop", "stopped"))
def remote_stop_station(ctx: Context) -> None:
    with ctx.step("charging"):
        ctx.prompt(PRESENT_CARD, f"Present the card {ctx.config.valid_id_token}")
        ctx.prompt(PLUG_IN, f"Plug the EV cable into connector {ctx.config.connector_id}")
        start = ctx.expect_call("StartTransaction")
        transaction_id = ctx.reply_to(start).payload["transactionId"]
        ctx.expect_call("StatusNotification", field_is("$.status", "Charging"))
        ctx.seen("StatusNotification")
    with ctx.step("remote stop"):
        answer = ctx.call("RemoteStopTransaction", {"transactionId": transaction_id}).response
        ctx.check(answer, ("$.status", "Accepted"))
    with ctx.step("stopped"):
        ctx.check(ctx.expect_call("StopTransaction"), ("$.reason", "Remote"),
                  ("$.transactionId", transaction_id))
        ctx.check(ctx.expect_call("StatusNotification",
                                  field_is("$.connectorId", ctx.config.connector_id)),
                  ("$.status", "Finishing"))


@case("TC_012_CSMS", "The central system stops a charging session remotely",
      versions=V16, role=CSMS_ROLE,
      steps=("boot", "status", "charging", "remote stop", "stopped"))
def remote_stop_csms(ctx: Context) -> None:
    ctx.answer("RemoteStopTransaction", {"status": "Accepted"})
    booted(ctx)
    with ctx.step("charging"):
        _authorized(ctx)
        transaction_id = _start(ctx)
    with ctx.step("remote stop"):
        ctx.prompt(CSMS_ACTION + "RemoteStopTransaction",
                   f"Make the central system stop transaction {transaction_id} on {ctx.station_id}")
        ctx.check(ctx.expect_call("RemoteStopTransaction"), ("$.transactionId", transaction_id))
    with ctx.step("stopped"):
        ctx.call("StopTransaction", {"transactionId": transaction_id, "meterStop": 1000,
                                     "timestamp": now(), "reason": "Remote"})
        for status in ("Finishing", "Available"):
            ctx.call("StatusNotification", status_payload(ctx, ctx.config.connector_id, status))
