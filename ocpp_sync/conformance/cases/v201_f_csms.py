"""OCPP 2.0.1 block F (remote control), CSMS under test: the kit plays the station."""
from __future__ import annotations

import uuid

from ocpp_sync.conformance.case import CSMS_ROLE, case
from ocpp_sync.conformance.cases._shared import BOOTED, V201, booted
from ocpp_sync.conformance.cases.v201_e_csms import occupied, transaction_event
from ocpp_sync.conformance.check import present
from ocpp_sync.conformance.context import Context
from ocpp_sync.conformance.prompts import CSMS_ACTION


@case("TC_F_01_CSMS", "The EV is plugged in first, then the CSMS starts the transaction remotely",
      versions=V201, role=CSMS_ROLE,
      steps=(*BOOTED, "plug in", "remote start", "energy transfer"), use_cases=("F01",))
def remote_start_cable_first(ctx: Context) -> None:
    transaction_id = str(uuid.uuid4())
    ctx.answer("RequestStartTransaction", {"status": "Accepted", "transactionId": transaction_id})
    booted(ctx)
    with ctx.step("plug in"):
        occupied(ctx)
        ctx.call("TransactionEvent", transaction_event(
            ctx, "CablePluggedIn", "EVConnected", token=False, transaction_id=transaction_id))
    with ctx.step("remote start"):
        ctx.prompt(CSMS_ACTION + "RequestStartTransaction",
                   f"Make the CSMS start a transaction on {ctx.station_id} for "
                   f"{ctx.config.valid_id_token}")
        request = ctx.expect_call("RequestStartTransaction")
        ctx.check(request, ("$.idToken.idToken", ctx.config.valid_id_token),
                  ("$.idToken.type", ctx.config.valid_id_token_type),
                  ("$.remoteStartId", present()))
        event = transaction_event(ctx, "RemoteStart", "EVConnected", token=True,
                                  event_type="Updated", seq_no=1, transaction_id=transaction_id)
        event["transactionInfo"]["remoteStartId"] = request.payload["remoteStartId"]
        ctx.check(ctx.call("TransactionEvent", event).response,
                  ("$.idTokenInfo.status", "Accepted"))
    with ctx.step("energy transfer"):
        ctx.call("TransactionEvent", transaction_event(
            ctx, "ChargingStateChanged", "Charging", token=False, event_type="Updated",
            seq_no=2, transaction_id=transaction_id))

