"""OCPP 2.0.1 block D (local authorization list), station under test: the kit plays the CSMS.

Each case sets the list it starts from with a Full update, so the order the
cases run in does not matter.
"""
from __future__ import annotations

from ocpp_sync.conformance.case import STATION_ROLE, case
from ocpp_sync.conformance.cases._charging import entry, list_version_is, send_list
from ocpp_sync.conformance.cases._shared import V201
from ocpp_sync.conformance.context import Context

_SECOND_TOKEN = "KIT-LIST-02"


@case("TC_D_01_CS", "The station takes a full local list and reports its version",
      versions=V201, role=STATION_ROLE, steps=("send full list", "get version"),
      requirements=("D01.FR.01",), use_cases=("D01",))
def full_list(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 1, [entry(ctx, ctx.config.valid_id_token),
                                   entry(ctx, _SECOND_TOKEN)])
    with ctx.step("get version"):
        list_version_is(ctx, 1)


@case("TC_D_02_CS", "The station adds an entry by a differential update and takes its version",
      versions=V201, role=STATION_ROLE, steps=("send full list", "send differential", "get version"),
      requirements=("D01.FR.01",), use_cases=("D01",))
def differential_update(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 1, [entry(ctx, ctx.config.valid_id_token)])
    with ctx.step("send differential"):
        send_list(ctx, "Differential", 2, [entry(ctx, _SECOND_TOKEN)])
    with ctx.step("get version"):
        list_version_is(ctx, 2)


@case("TC_D_03_CS", "The station removes an entry sent without its token info in a differential update",
      versions=V201, role=STATION_ROLE, steps=("send full list", "send differential", "get version"),
      requirements=("D01.FR.01",), use_cases=("D01",))
def differential_remove(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 1, [entry(ctx, ctx.config.valid_id_token),
                                   entry(ctx, _SECOND_TOKEN)])
    with ctx.step("send differential"):
        send_list(ctx, "Differential", 2, [entry(ctx, _SECOND_TOKEN, None)])
    with ctx.step("get version"):
        list_version_is(ctx, 2)


@case("TC_D_04_CS", "The station empties its list on a full update without entries",
      versions=V201, role=STATION_ROLE, steps=("send full list", "send empty full list"),
      requirements=("D01.FR.01",), use_cases=("D01",))
def full_empty(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 1, [entry(ctx, ctx.config.valid_id_token)])
    with ctx.step("send empty full list"):
        send_list(ctx, "Full", 2, None)


@case("TC_D_08_CS", "The station reports the version of the list it was last sent",
      versions=V201, role=STATION_ROLE, steps=("send full list", "get version"),
      use_cases=("D02",))
def get_list_version(ctx: Context) -> None:
    with ctx.step("send full list"):
        send_list(ctx, "Full", 7, [entry(ctx, ctx.config.valid_id_token)])
    with ctx.step("get version"):
        list_version_is(ctx, 7)
