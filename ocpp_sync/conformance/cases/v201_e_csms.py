"""OCPP 2.0.1 block E (transactions), CSMS under test: the kit plays the station."""
from __future__ import annotations

import uuid
from typing import Any

from ocpp_sync.conformance.case import CSMS_ROLE, case
from ocpp_sync.conformance.cases._shared import BOOTED, V201, booted, id_token, now, status_payload
from ocpp_sync.conformance.context import Context


def transaction_event(ctx: Context, trigger: str, charging_state: str, *, token: bool,
                       event_type: str = "Started", seq_no: int = 0,
                       transaction_id: str | None = None) -> dict[str, Any]:
    """A TransactionEvent on the configured EVSE and connector (a new transaction id unless given)."""
    payload: dict[str, Any] = {
        "eventType": event_type, "timestamp": now(), "triggerReason": trigger, "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id or str(uuid.uuid4()),
                            "chargingState": charging_state},
        "evse": {"id": ctx.config.evse_id, "connectorId": ctx.config.connector_id}}
    if token:
        payload["idToken"] = id_token(ctx)
    return payload


def occupied(ctx: Context) -> None:
    """The connector's state change as 2.0.1 reports it: a StatusNotification and a NotifyEvent."""
    ctx.call("StatusNotification", status_payload(ctx, ctx.config.evse_id, "Occupied"))
    ctx.call("NotifyEvent", {"generatedAt": now(), "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": now(), "trigger": "Delta", "actualValue": "Occupied",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": ctx.config.evse_id,
                                                    "connectorId": ctx.config.connector_id}},
        "variable": {"name": "AvailabilityState"}}]})


def _authorized(ctx: Context) -> None:
    answer = ctx.call("Authorize", {"idToken": id_token(ctx)}).response
    ctx.check(answer, ("$.idTokenInfo.status", "Accepted"))


@case("TC_E_04_CSMS", "A driver presents a valid token first, then plugs in and charges",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "authorize", "energy transfer"),
      requirements=("E03.FR.02",), use_cases=("E03",))
def authorization_first(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("authorize"):
        _authorized(ctx)
    with ctx.step("energy transfer"):
        occupied(ctx)
        answer = ctx.call("TransactionEvent", transaction_event(
            ctx, "Authorized", "Charging", token=True)).response
        ctx.check(answer, ("$.idTokenInfo.status", "Accepted"))


@case("TC_E_09_CSMS", "A transaction that starts when the EV is connected",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "connect", "transaction started"),
      requirements=("E01.FR.02",), use_cases=("E01",))
def start_ev_connected(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("connect"):
        occupied(ctx)
    with ctx.step("transaction started"):
        ctx.call("TransactionEvent", transaction_event(ctx, "CablePluggedIn", "EVConnected",
                                                        token=False))


@case("TC_E_10_CSMS", "A transaction that starts when a locally presented token is authorized",
      versions=V201, role=CSMS_ROLE, steps=(*BOOTED, "authorize", "transaction started"),
      requirements=("E01.FR.03",), use_cases=("E01",))
def start_authorized(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("authorize"):
        _authorized(ctx)
    with ctx.step("transaction started"):
        answer = ctx.call("TransactionEvent", transaction_event(
            ctx, "Authorized", "Idle", token=True)).response
        ctx.check(answer, ("$.idTokenInfo.status", "Accepted"))
