"""Schema facts attached to the fields of the generated message classes.

The generated modules describe each field with one of these kinds; the codec
(``_codec.py``) compiles them into conversion and validation functions. Keeping
the facts declarative lets a reviewer read a message's constraints next to its
attributes.
"""
from __future__ import annotations

import enum

import attrs

METADATA_KEY = "ocpp"


class StrEnum(str, enum.Enum):
    """Base of the generated enums: members are their wire strings, and print as them."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)


@attrs.frozen
class String:
    max_length: int | None = None


@attrs.frozen
class Integer:
    minimum: int | None = None
    maximum: int | None = None


@attrs.frozen
class Number:
    """A JSON number; ints stay ints and floats keep their digits."""

    minimum: float | None = None
    maximum: float | None = None
    multiple_of: float | None = None


@attrs.frozen
class Boolean:
    pass


@attrs.frozen
class DateTime:
    """An RFC 3339 date-time on the wire, an aware ``datetime`` in Python."""


@attrs.frozen
class AnyValue:
    """Any JSON value, passed through (e.g. DataTransfer ``data``)."""


@attrs.frozen
class EnumOf:
    enum: type[enum.Enum]


@attrs.frozen
class Object:
    cls: type


@attrs.frozen
class Array:
    item: Kind
    min_items: int | None = None
    max_items: int | None = None


Kind = String | Integer | Number | Boolean | DateTime | AnyValue | EnumOf | Object | Array


@attrs.frozen
class FieldSpec:
    wire: str
    kind: Kind
    required: bool


@attrs.frozen
class ExtraSpec:
    """Marks the field that keeps properties an open object (``customData``) may carry."""


def meta(wire: str, kind: Kind, *, required: bool) -> dict[str, FieldSpec]:
    """The attrs metadata of a field: its wire name, kind and whether it is required."""
    return {METADATA_KEY: FieldSpec(wire, kind, required)}


EXTRA = {METADATA_KEY: ExtraSpec()}


def specs(cls: type) -> tuple[tuple[str, FieldSpec | ExtraSpec], ...]:
    """(attribute name, spec) for each field of a generated class, in order."""
    return tuple((a.name, a.metadata[METADATA_KEY]) for a in attrs.fields(cls))
