"""The kit's own OCPP-J checks of a CSMS's error handling (block X: no OCTT ids of their own).

They send what a correct station never sends, through the negative injection
of :meth:`Context.unchecked_call`.
"""
from __future__ import annotations

from ocpp_sync.conformance.case import CSMS_ROLE, case
from ocpp_sync.conformance.cases._shared import V16, V201, booted, now, status_payload
from ocpp_sync.conformance.check import one_of
from ocpp_sync.conformance.config import REQUIRES_BOOT
from ocpp_sync.conformance.context import Context, Frame

# Both spellings of 1.6 (which misspells "Occurence") and 2.x.
_SCHEMA_CODES = ("OccurrenceConstraintViolation", "OccurenceConstraintViolation",
                       "FormatViolation", "FormationViolation", "TypeConstraintViolation",
                       "PropertyConstraintViolation")
# A missing required field may also be answered ProtocolError ("payload incomplete"), as the
# ocpp package does.
_MISSING_CODES = one_of(*_SCHEMA_CODES, "ProtocolError")
_UNKNOWN_CODES = one_of(*_SCHEMA_CODES)


def _call_error(ctx: Context, answer: Frame, code: object) -> None:
    if answer.type != "CALLERROR":
        ctx.fail(f"{answer.action}: answered with a {answer.type}", frame=answer, field="$",
                 expected="a CALLERROR", got=answer.payload)
    ctx.check(answer, ("$.code", code), error=True)


@case("KIT_X_01_CSMS", "Requests that break their schema are answered with a CALLERROR naming why",
      versions=(*V16, *V201), role=CSMS_ROLE, steps=("boot", "status", "missing field",
                                                    "unknown field"))
def schema_violation(ctx: Context) -> None:
    booted(ctx)
    with ctx.step("missing field"):   # no status
        payload: dict[str, object] = {"connectorId": 1, "errorCode": "NoError"} \
            if ctx.version == "1.6" else {"timestamp": now(), "evseId": 1, "connectorId": 1}
        _call_error(ctx, ctx.unchecked_call("StatusNotification", payload), _MISSING_CODES)
    with ctx.step("unknown field"):   # the schemas allow no other properties
        payload = dict(status_payload(ctx, ctx.config.evse_id, "Available"), kitUnknownField=1)
        _call_error(ctx, ctx.unchecked_call("StatusNotification", payload), _UNKNOWN_CODES)


@case("KIT_X_02_CSMS", "A request before the boot is refused with SecurityError",
      versions=V201, role=CSMS_ROLE, steps=("call before boot",), needs=(REQUIRES_BOOT,))
def call_before_boot(ctx: Context) -> None:
    with ctx.step("call before boot"):
        _call_error(ctx, ctx.unchecked_call("Heartbeat", {}), "SecurityError")
