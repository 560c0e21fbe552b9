"""Checking a device model value against its variable's characteristics.

Every value in the 2.x device model travels as a string; its dataType (DataEnumType)
says how to read it, and minLimit / maxLimit / valuesList bound it. For numbers
the limits bound the value, for strings its length, for the list types the number
of members (2.1's maxElements too). :func:`check_value` returns the value as the
station stores it (booleans in lower case) or raises :class:`InvalidValue` with a
reasonCode from the appendix's list (InvalidValue, ValueTooLow, ValueTooHigh,
TooManyElements). Pure: no clock, no state.
"""
from __future__ import annotations

import math
import re

import attrs

from ocpp_sync.protocol.datetimes import parse_datetime

__all__ = ["DATA_TYPES", "LIST_TYPES", "Characteristics", "InvalidValue", "check_value", "members"]

#: DataEnumType, in the schema's order.
DATA_TYPES = ("string", "decimal", "integer", "dateTime", "boolean", "OptionList", "SequenceList", "MemberList")
#: The types whose value is a comma-separated list of members of valuesList.
LIST_TYPES = ("SequenceList", "MemberList")

_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


class InvalidValue(ValueError):
    """A value its variable cannot hold; ``reason`` is the reasonCode to answer with."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@attrs.frozen
class Characteristics:
    """A variable's VariableCharacteristicsType: what values it takes, in which unit.

    ``values_list`` holds the allowed members of an OptionList, SequenceList or
    MemberList (and, when given, of a string); ``max_elements`` (2.1) caps the
    members of a list.
    """

    data_type: str
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] = ()
    supports_monitoring: bool = False
    max_elements: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.data_type not in DATA_TYPES:
            raise ValueError(f"dataType {self.data_type!r} is not one of {', '.join(DATA_TYPES)}")
        if self.data_type in ("OptionList", *LIST_TYPES) and not self.values_list:
            raise ValueError(f"a {self.data_type} needs a values_list")
        # the schema's lengths, so that every report of the variable can be sent
        if len(",".join(self.values_list)) > 1000:
            raise ValueError("a values_list is at most 1000 characters, commas included")
        if self.unit is not None and len(self.unit) > 16:
            raise ValueError("a unit is at most 16 characters")


def members(value: str) -> list[str]:
    """The members of a list value; the empty string is the empty list."""
    return [] if value == "" else [m.strip() for m in value.split(",")]


def _bounded(number: float, ch: Characteristics, what: str) -> None:
    if ch.min_limit is not None and number < ch.min_limit:
        raise InvalidValue("ValueTooLow", f"{what} {number:g} is below {ch.min_limit:g}")
    if ch.max_limit is not None and number > ch.max_limit:
        raise InvalidValue("ValueTooHigh", f"{what} {number:g} is above {ch.max_limit:g}")


def _check_list(value: str, ch: Characteristics) -> str:
    items = members(value)
    unknown = [m for m in items if m not in ch.values_list]
    if unknown:
        raise InvalidValue("InvalidValue", f"{unknown[0]!r} is not one of {','.join(ch.values_list)}")
    if len(set(items)) != len(items):
        raise InvalidValue("InvalidValue", "a member is listed twice")
    if ch.max_elements is not None and len(items) > ch.max_elements:
        raise InvalidValue("TooManyElements", f"at most {ch.max_elements} members")
    _bounded(len(items), ch, "the number of members")
    return ",".join(items)


def check_value(value: str, ch: Characteristics) -> str:
    """``value`` as stored, if ``ch`` allows it; raises :class:`InvalidValue` if not."""
    kind = ch.data_type
    if kind == "integer":
        if not _INTEGER.match(value):
            raise InvalidValue("InvalidValue", f"{value!r} is not an integer")
        _bounded(int(value), ch, "the value")
        return str(int(value))
    if kind == "decimal":
        if not _DECIMAL.match(value) or not math.isfinite(float(value)):
            raise InvalidValue("InvalidValue", f"{value!r} is not a decimal")
        _bounded(float(value), ch, "the value")
        return value
    if kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise InvalidValue("InvalidValue", f"{value!r} is not true or false")
        return value.lower()
    if kind == "dateTime":
        try:
            parse_datetime(value)
        except ValueError as exc:
            raise InvalidValue("InvalidValue", f"{value!r}: {exc}") from None
        return value
    if kind == "OptionList":
        if value not in ch.values_list:
            raise InvalidValue("InvalidValue", f"{value!r} is not one of {','.join(ch.values_list)}")
        return value
    if kind in LIST_TYPES:
        return _check_list(value, ch)
    if ch.values_list and value not in ch.values_list:
        raise InvalidValue("InvalidValue", f"{value!r} is not one of {','.join(ch.values_list)}")
    _bounded(len(value), ch, "the length")
    return value
