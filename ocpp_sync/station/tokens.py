"""Identifiers and what the CSMS says about them, as plain values both versions share.

A 1.6 ``idTag`` is an :class:`IdToken` with an empty ``type``; a 2.x ``IdTokenType``
keeps its type, and two tokens are the same only when value and type match. Values
compare without case: both versions type them as case-insensitive strings
(1.6 CiString20Type, 2.x CiString36Type).
:class:`TokenInfo` holds the part of a 1.6 ``IdTagInfo`` / 2.x ``IdTokenInfoType``
the local list, the cache and reservations decide on. The ``*_from_wire`` and
``*_to_wire`` functions convert message objects of either version.
"""
from __future__ import annotations

import datetime
from typing import Any

import attrs

from ocpp_sync.protocol.versions import version_module

__all__ = ["ACCEPTED", "IdToken", "TokenInfo", "token_from_wire", "token_to_wire", "info_from_wire",
           "info_to_wire", "info_from_answer"]

ACCEPTED = "Accepted"


@attrs.frozen
class IdToken:
    """An identifier presented at the station: ``value`` (its case kept, ignored when compared)
    and (2.x) its ``type``."""

    value: str = attrs.field(eq=str.casefold)
    type: str = ""

    def as_json(self) -> dict[str, str]:
        return {"value": self.value, "type": self.type}


@attrs.frozen
class TokenInfo:
    """An identifier's status; ``expiry`` (1.6 expiryDate, 2.x cacheExpiryDateTime) when it
    lapses, ``group`` its 1.6 parentIdTag / 2.x groupIdToken, ``evse_ids`` (2.x) where it may charge."""

    status: str
    expiry: datetime.datetime | None = None
    group: IdToken | None = None
    evse_ids: tuple[int, ...] = ()

    def valid_at(self, now: datetime.datetime) -> bool:
        """Accepted and not expired at ``now``."""
        return self.status == ACCEPTED and not self.expired_at(now)

    def expired_at(self, now: datetime.datetime) -> bool:
        return self.expiry is not None and self.expiry <= now

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "expiry": None if self.expiry is None else self.expiry.isoformat(),
                "group": None if self.group is None else self.group.as_json(), "evseIds": list(self.evse_ids)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenInfo:
        group = data.get("group")
        expiry = data.get("expiry")
        return cls(status=str(data["status"]),
                   expiry=None if expiry is None else datetime.datetime.fromisoformat(expiry),
                   group=None if group is None else IdToken(str(group["value"]), str(group["type"])),
                   evse_ids=tuple(int(e) for e in data.get("evseIds", ())))


def token_from_wire(version: str, wire: Any) -> IdToken:
    """A 1.6 idTag (a str) or a 2.x ``IdTokenType`` as an :class:`IdToken`."""
    if version == "1.6":
        return IdToken(str(wire))
    return IdToken(str(wire.id_token), str(wire.type))


def token_to_wire(version: str, token: IdToken) -> Any:
    """The idTag string (1.6) or ``IdTokenType`` (2.x) for ``token``."""
    if version == "1.6":
        return token.value
    return version_module(version).IdTokenType(id_token=token.value, type=token.type)


def info_from_wire(version: str, wire: Any) -> TokenInfo:
    """A 1.6 ``IdTagInfo`` or a 2.x ``IdTokenInfoType`` as a :class:`TokenInfo`."""
    if version == "1.6":
        group = None if wire.parent_id_tag is None else IdToken(str(wire.parent_id_tag))
        return TokenInfo(str(wire.status), wire.expiry_date, group)
    group = None if wire.group_id_token is None else token_from_wire(version, wire.group_id_token)
    return TokenInfo(str(wire.status), wire.cache_expiry_date_time, group, tuple(wire.evse_id or ()))


def info_to_wire(version: str, info: TokenInfo) -> Any:
    """The ``IdTagInfo`` (1.6) or ``IdTokenInfoType`` (2.x) for ``info``."""
    m = version_module(version)
    if version == "1.6":
        return m.IdTagInfo(status=info.status, expiry_date=info.expiry,
                           parent_id_tag=None if info.group is None else info.group.value)
    return m.IdTokenInfoType(status=info.status, cache_expiry_date_time=info.expiry,
                             group_id_token=None if info.group is None else token_to_wire(version, info.group),
                             evse_id=list(info.evse_ids) or None)


def info_from_answer(version: str, answer: Any) -> TokenInfo | None:
    """The token information in an Authorize, StartTransaction, StopTransaction (1.6) or
    TransactionEvent (2.x) answer; None when it carries none (the last two may not)."""
    wire = getattr(answer, "id_tag_info" if version == "1.6" else "id_token_info", None)
    return None if wire is None else info_from_wire(version, wire)
