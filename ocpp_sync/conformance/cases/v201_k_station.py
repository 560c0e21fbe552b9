"""OCPP 2.0.1 block K (smart charging), station under test: the kit plays the CSMS.

Each case first clears every profile, so a case starts from no profile
whichever ran before it. Limits are in amperes.
"""
from __future__ import annotations

import uuid

from ocpp_sync.conformance.case import STATION_ROLE, case
from ocpp_sync.conformance.cases._charging import (
    clear_all,
    clear_by_id,
    composite,
    periods_are,
    profile,
    set_profile,
    station_max,
)
from ocpp_sync.conformance.cases._shared import V201
from ocpp_sync.conformance.context import Context

_STEPS_SET = ("clear", "set profile")


@case("TC_K_01_CS", "The station takes a TxDefaultProfile for one EVSE",
      versions=V201, role=STATION_ROLE, steps=_STEPS_SET, requirements=("K01.FR.31",),
      use_cases=("K01",))
def tx_default_specific_evse(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 101, "TxDefaultProfile", [(0, 16)]))


@case("TC_K_02_CS", "The station rejects a TxProfile for an EVSE without a transaction",
      versions=V201, role=STATION_ROLE, steps=_STEPS_SET, use_cases=("K01",))
def tx_profile_without_transaction(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 102, "TxProfile", [(0, 16)],
                                 transaction_id=str(uuid.uuid4())), status="Rejected")


@case("TC_K_03_CS", "The station takes a ChargingStationMaxProfile for the whole station",
      versions=V201, role=STATION_ROLE, steps=_STEPS_SET, requirements=("K01.FR.31", "K01.FR.38"),
      use_cases=("K01",))
def station_max_profile(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 103, station_max(ctx), [(0, 20)], evse=0))


@case("TC_K_05_CS", "The station clears a profile named by its id, and knows it gone after",
      versions=V201, role=STATION_ROLE, steps=(*_STEPS_SET, "clear by id", "clear again"),
      requirements=("K10.FR.02",), use_cases=("K10",))
def clear_with_id(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 105, "TxDefaultProfile", [(0, 16)]))
    with ctx.step("clear by id"):
        ctx.check(clear_by_id(ctx, 105), ("$.status", "Accepted"))
    with ctx.step("clear again"):
        ctx.check(clear_by_id(ctx, 105), ("$.status", "Unknown"))


@case("TC_K_08_CS", "The station answers Unknown to clearing a profile it never had",
      versions=V201, role=STATION_ROLE, steps=("clear", "clear unknown"), use_cases=("K10",))
def clear_without_profile(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("clear unknown"):
        ctx.check(clear_by_id(ctx, 108), ("$.status", "Unknown"))


@case("TC_K_39_CS", "With no profile installed the station still gives a composite schedule",
      versions=V201, role=STATION_ROLE, steps=("clear", "get composite"), use_cases=("K08",))
def composite_without_profile(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("get composite"):
        composite(ctx, 300)


@case("TC_K_40_CS", "The composite schedule takes the profile of the higher stack level",
      versions=V201, role=STATION_ROLE, steps=(*_STEPS_SET, "get composite"), use_cases=("K08",))
def composite_stacked(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 140, "TxDefaultProfile", [(0, 6), (100, 8), (200, 10)]))
        set_profile(ctx, profile(ctx, 141, "TxDefaultProfile", [(0, 16)], stack_level=1,
                                 duration=150))
    with ctx.step("get composite"):
        periods_are(ctx, composite(ctx, 400), [(0, 16), (150, 8), (200, 10)])


@case("TC_K_41_CS", "The composite schedule is the lower of the station limit and the default",
      versions=V201, role=STATION_ROLE, steps=(*_STEPS_SET, "get composite"), use_cases=("K08",))
def composite_combined(ctx: Context) -> None:
    with ctx.step("clear"):
        clear_all(ctx)
    with ctx.step("set profile"):
        set_profile(ctx, profile(ctx, 150, station_max(ctx), [(0, 10)], evse=0))
        set_profile(ctx, profile(ctx, 151, "TxDefaultProfile", [(0, 6), (100, 8), (200, 16)]))
    with ctx.step("get composite"):
        periods_are(ctx, composite(ctx, 400), [(0, 6), (100, 8), (200, 10)])
