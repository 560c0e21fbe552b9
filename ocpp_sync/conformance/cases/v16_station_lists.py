"""OCPP 1.6 Local Auth List Management and Smart Charging, charge point under test.

The kit plays the central system. Each case sets the list or clears the
profiles it starts from, so the order the cases run in does not matter.
"""
from __future__ import annotations

from ocpp_sync.conformance.case import STATION_ROLE, case
from ocpp_sync.conformance.cases._charging import (
    clear_all,
    clear_by_id,
    composite,
    entry,
    list_version_is,
    periods_are,
    profile,
    send_list,
    set_profile,
    station_max,
)
from ocpp_sync.conformance.cases._shared import V16
from ocpp_sync.conformance.config import LOCAL_LIST_DISABLED
from ocpp_sync.conformance.context import Context

_SECOND_TAG = "KIT-LIST-02"


# -- Local Auth List Management ---------------------------------------------------------------

@case("TC_042_1_CS", "A charge point without a local list says so when asked its version",
      versions=V16, role=STATION_ROLE, steps=("get version",), needs=(LOCAL_LIST_DISABLED,))
def list_version_not_supported(ctx: Context) -> None:
    with ctx.step("get version"):
        answer = ctx.unchecked_call("GetLocalListVersion", {})
        if answer.type == "CALLERROR":
            ctx.check(answer, ("$.code", "NotSupported"), error=True)
        else:
            ctx.check(answer, ("$.listVersion", -1))


@case("TC_042_2_CS", "An emptied local list reports version 0",
      versions=V16, role=STATION_ROLE, steps=("send empty full list", "get version"))
def list_version_empty(ctx: Context) -> None:
    with ctx.step("send empty full list"):
        send_list(ctx, "Full", 1, None)
    with ctx.step("get version"):
        list_version_is(ctx, 0)


@case("TC_043_CS", "The charge point takes a full list, then a differential update",
      versions=V16, role=STATION_ROLE, steps=("send full list", "send differential"))
def send_list_full_then_differential(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 1, [entry(ctx, ctx.config.valid_id_token)])
    with ctx.step("send differential"):
        send_list(ctx, "Differential", 2, [entry(ctx, _SECOND_TAG)])


@case("TC_043_1_CS", "A charge point without a local list refuses one",
      versions=V16, role=STATION_ROLE, steps=("send full list",), needs=(LOCAL_LIST_DISABLED,))
def send_list_not_supported(ctx: Context) -> None:
    with ctx.step("send full list"):
        answer = ctx.unchecked_call("SendLocalList", {
            "listVersion": 1, "updateType": "Full",
            "localAuthorizationList": [entry(ctx, ctx.config.valid_id_token)]})
        if answer.type == "CALLERROR":
            ctx.check(answer, ("$.code", "NotSupported"), error=True)
        else:
            ctx.check(answer, ("$.status", "NotSupported"))


@case("TC_043_2_CS", "A differential update not above the list's version is refused",
      versions=V16, role=STATION_ROLE,
      steps=("send full list", "send differential", "send stale differential"))
def send_list_version_mismatch(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 2, [entry(ctx, ctx.config.valid_id_token)])
        list_version_is(ctx, 2)
    with ctx.step("send differential"):
        send_list(ctx, "Differential", 5, [entry(ctx, _SECOND_TAG)])
        list_version_is(ctx, 5)
    with ctx.step("send stale differential"):
        send_list(ctx, "Differential", 4, [entry(ctx, _SECOND_TAG, None)], status="VersionMismatch")
        list_version_is(ctx, 5)


# -- Smart Charging -----------------------------------------------------------------------------

@case("TC_056_CS", "The charge point takes a TxDefaultProfile for new transactions",
      versions=V16, role=STATION_ROLE, steps=("clear", "set profile"))
def tx_default_profile(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 56, "TxDefaultProfile", [(0, 16)]))


@case("TC_058_1_CS", "The charge point rejects a TxProfile while no transaction runs",
      versions=V16, role=STATION_ROLE, steps=("clear", "set profile"))
def tx_profile_without_transaction(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        answer = ctx.unchecked_call("SetChargingProfile", profile(
            ctx, 58, "TxProfile", [(0, 16)], transaction_id=58))
        if answer.type == "CALLERROR":
            ctx.check(answer, ("$.code", "PropertyConstraintViolation"), error=True)
        else:
            ctx.check(answer, ("$.status", "Rejected"))


@case("TC_066_CS", "The composite schedule is the lower of the charge point limit and the default",
      versions=V16, role=STATION_ROLE, steps=("clear", "set profile", "get composite"))
def composite_schedule(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 661, station_max(ctx), [(0, 10)], evse=0))
        set_profile(ctx, profile(ctx, 662, "TxDefaultProfile", [(0, 6), (100, 8), (200, 16)]))
    with ctx.step("get composite"):
        periods_are(ctx, composite(ctx, 400), [(0, 6), (100, 8), (200, 10)])


@case("TC_067_CS", "The charge point clears a profile by id, then the rest, and its limit goes",
      versions=V16, role=STATION_ROLE,
      steps=("clear", "set profile", "clear by id", "clear all", "cleared"))
def clear_charging_profile(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 671, "TxDefaultProfile", [(0, 6), (60, 8), (200, 10)],
                                 stack_level=1))
        set_profile(ctx, profile(ctx, 672, "TxDefaultProfile", [(0, 12)], stack_level=0))
    with ctx.step("clear by id"):
        ctx.check(clear_by_id(ctx, 671), ("$.status", "Accepted"))
        periods_are(ctx, composite(ctx, 300), [(0, 12)])
    with ctx.step("clear all"):
        answer = ctx.call("ClearChargingProfile", {
            "connectorId": ctx.config.connector_id, "chargingProfilePurpose": "TxDefaultProfile"})
        ctx.check(answer.response, ("$.status", "Accepted"))
    with ctx.step("cleared"):
        ctx.check(clear_by_id(ctx, 672), ("$.status", "Unknown"))
