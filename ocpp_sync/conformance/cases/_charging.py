"""Smart charging and local list payloads both versions share, for a kit that plays the CSMS.

Payloads are built as on the wire, so the cases of 1.6 and 2.0.1 read alike:
``profile(...)`` gives the SetChargingProfile request, ``entry(...)`` a local list entry.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ocpp_sync.conformance.check import Matcher, is_absent, satisfies
from ocpp_sync.conformance.context import Context, Frame

#: Seconds a station's clock (and the kit's round trips) may shift a schedule's start periods.
MAX_TIME_DEVIATION = 5
#: The purpose that limits the whole station, as each version names it.
_STATION_MAX = {"1.6": "ChargePointMaxProfile", "2.0.1": "ChargingStationMaxProfile"}


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def station_max(ctx: Context) -> str:
    return _STATION_MAX[ctx.version]


def profile(ctx: Context, profile_id: int, purpose: str, periods: list[tuple[int, float]], *,
            evse: int | None = None, stack_level: int = 0, kind: str = "Absolute",
            duration: int | None = None, transaction_id: Any = None) -> dict[str, Any]:
    """A SetChargingProfile request in amperes; an Absolute schedule starts now (to the second)."""
    evse = ctx.config.evse_id if evse is None else evse
    schedule: dict[str, Any] = {"chargingRateUnit": "A", "chargingSchedulePeriod": [
        {"startPeriod": start, "limit": limit} for start, limit in periods]}
    if kind == "Absolute":
        schedule["startSchedule"] = _stamp(datetime.now(timezone.utc))
    if duration is not None:
        schedule["duration"] = duration
    charging_profile: dict[str, Any] = {"stackLevel": stack_level, "chargingProfilePurpose": purpose,
                                        "chargingProfileKind": kind}
    if transaction_id is not None:
        charging_profile["transactionId"] = transaction_id
    if ctx.version == "1.6":
        charging_profile.update(chargingProfileId=profile_id, chargingSchedule=schedule)
        return {"connectorId": evse, "csChargingProfiles": charging_profile}
    charging_profile.update(id=profile_id, chargingSchedule=[dict(schedule, id=profile_id)])
    return {"evseId": evse, "chargingProfile": charging_profile}


def set_profile(ctx: Context, request: dict[str, Any], status: str = "Accepted") -> Frame:
    """Send a SetChargingProfile and check the answer's status."""
    answer = ctx.call("SetChargingProfile", request).response
    ctx.check(answer, ("$.status", status))
    return answer


def clear_all(ctx: Context) -> None:
    """Memory state: no charging profile installed (the answer is Accepted or Unknown)."""
    ctx.call("ClearChargingProfile", {})


def clear_by_id(ctx: Context, profile_id: int) -> Frame:
    key = "id" if ctx.version == "1.6" else "chargingProfileId"
    return ctx.call("ClearChargingProfile", {key: profile_id}).response


def composite(ctx: Context, duration: int, evse: int | None = None) -> Frame:
    """A GetCompositeSchedule in amperes, checked Accepted, for the EVSE (connector) and duration."""
    evse = ctx.config.evse_id if evse is None else evse
    key = "connectorId" if ctx.version == "1.6" else "evseId"
    answer = ctx.call("GetCompositeSchedule", {key: evse, "duration": duration,
                                               "chargingRateUnit": "A"}).response
    schedule = "$.chargingSchedule" if ctx.version == "1.6" else "$.schedule"
    ctx.check(answer, ("$.status", "Accepted"),
              ("$.connectorId" if ctx.version == "1.6" else "$.schedule.evseId", evse),
              (f"{schedule}.duration", duration), (f"{schedule}.chargingRateUnit", "A"))
    return answer


def _near(want: float, within: float, shown: str) -> Matcher:
    return satisfies(lambda value: abs(float(value) - want) <= within, shown)


def periods_are(ctx: Context, answer: Frame, expected: list[tuple[int, float]]) -> None:
    """The composite's periods: these limits, in order, starting within MAX_TIME_DEVIATION s."""
    path = ("$.chargingSchedule" if ctx.version == "1.6" else "$.schedule") + ".chargingSchedulePeriod"
    checks: list[tuple[str, Any]] = []
    for index, (start, limit) in enumerate(expected):
        checks.append((f"{path}[{index}].limit", _near(limit, 0.05, f"{limit:g}")))
        checks.append((f"{path}[{index}].startPeriod",
                       _near(start, MAX_TIME_DEVIATION, f"{start} (+/- {MAX_TIME_DEVIATION})")))
    checks.append((f"{path}[{len(expected)}]", is_absent()))
    ctx.check(answer, *checks)


def entry(ctx: Context, token: str, status: str | None = "Accepted") -> dict[str, Any]:
    """A local list entry for ``token``; ``status`` None: without its info (a Differential removal)."""
    if ctx.version == "1.6":
        item: dict[str, Any] = {"idTag": token}
        if status is not None:
            item["idTagInfo"] = {"status": status,
                                 "expiryDate": _stamp(datetime.now(timezone.utc) + timedelta(days=1))}
        return item
    item = {"idToken": {"idToken": token, "type": ctx.config.valid_id_token_type}}
    if status is not None:
        item["idTokenInfo"] = {"status": status}
    return item


def send_list(ctx: Context, update_type: str, version: int, entries: list[dict[str, Any]] | None,
              status: str = "Accepted") -> Frame:
    """A SendLocalList (``entries`` None: the list omitted), its answer's status checked."""
    key = "listVersion" if ctx.version == "1.6" else "versionNumber"
    payload: dict[str, Any] = {key: version, "updateType": update_type}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    answer = ctx.call("SendLocalList", payload).response
    ctx.check(answer, ("$.status", status))
    return answer


def list_version_is(ctx: Context, version: int) -> None:
    answer = ctx.call("GetLocalListVersion", {}).response
    ctx.check(answer, ("$.listVersion" if ctx.version == "1.6" else "$.versionNumber", version))
