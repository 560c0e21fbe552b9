"""Schema facts attached to the fields of the generated message classes.

The generated modules describe each field with one of these kinds; the codec
(``_codec.py``) compiles them into conversion and validation functions. Keeping
the facts declarative lets a reviewer read a message's constraints next to its
attributes.
"""
from __future__ import annotations

import enum
from typing import Any, Optional, Tuple, Type, Union

import attrs

METADATA_KEY = "ocpp"


@attrs.frozen
class String:
    max_length: Optional[int] = None


@attrs.frozen
class Integer:
    minimum: Optional[int] = None
    maximum: Optional[int] = None


@attrs.frozen
class Number:
    """A JSON number; ints stay ints and floats keep their digits."""

    minimum: Optional[float] = None
    maximum: Optional[float] = None
    multiple_of: Optional[float] = None


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
    enum: Type[enum.Enum]


@attrs.frozen
class Object:
    cls: type


@attrs.frozen
class Array:
    item: "Kind"
    min_items: Optional[int] = None
    max_items: Optional[int] = None


Kind = Union[String, Integer, Number, Boolean, DateTime, AnyValue, EnumOf, Object, Array]


@attrs.frozen
class FieldSpec:
    wire: str
    kind: Kind
    required: bool


@attrs.frozen
class ExtraSpec:
    """Marks the field that keeps properties an open object (``customData``) may carry."""


def field(wire: str, kind: Kind) -> Any:
    """A required field."""
    return attrs.field(metadata={METADATA_KEY: FieldSpec(wire, kind, True)})


def optional(wire: str, kind: Kind) -> Any:
    """An optional field: ``None`` means absent and is left out of the payload."""
    return attrs.field(default=None, metadata={METADATA_KEY: FieldSpec(wire, kind, False)})


def extra() -> Any:
    """Where an open object keeps the properties its schema does not name."""
    return attrs.field(default=None, metadata={METADATA_KEY: ExtraSpec()})


def specs(cls: type) -> Tuple[Tuple[str, Union[FieldSpec, ExtraSpec]], ...]:
    """(attribute name, spec) for each field of a generated class, in order."""
    return tuple((a.name, a.metadata[METADATA_KEY]) for a in attrs.fields(cls))
