"""Field checks on wire payloads, named by JSON path (``$.idTokenInfo.status``).

Payloads are checked as they were on the wire (camelCase keys), so a
failure names the field the way the specification and the OCTT do.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["MISSING", "Matcher", "at", "matches", "absent_or", "one_of", "present", "is_absent",
           "satisfies", "first_mismatch", "field_is"]

_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


class _Missing:
    """A field that is not in the payload (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


def at(payload: Any, path: str) -> Any:
    """The value at ``path`` (``$.a.b[0].c``) in ``payload``, or MISSING."""
    if not path.startswith("$"):
        raise ValueError(f"a JSON path starts with '$': {path!r}")
    rest, value = path[1:], payload
    while rest:
        part = _PART.match(rest)
        if part is None:
            raise ValueError(f"cannot read the JSON path {path!r} at {rest!r}")
        rest = rest[part.end():]
        key, index = part.group(1), part.group(2)
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return MISSING
            value = value[key]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return MISSING
            value = value[int(index)]
    return value


@dataclass(frozen=True)
class Matcher:
    """An expectation other than equality: ``test(value)`` and how a report shows it."""

    test: Callable[[Any], bool]
    shown: str

    def __repr__(self) -> str:
        return self.shown


def matches(expected: Any, value: Any) -> bool:
    """``value`` meets ``expected``: a Matcher's test, else equality (an absent field equals nothing)."""
    if isinstance(expected, Matcher):
        return expected.test(value)
    return value is not MISSING and bool(value == expected)


def one_of(*values: Any) -> Matcher:
    return Matcher(lambda value: value is not MISSING and value in values,
                   "one of " + ", ".join(repr(v) for v in values))


def absent_or(*values: Any) -> Matcher:
    """Absent, or one of ``values`` (OCTT: "is absent or ... = Actual")."""
    return Matcher(lambda value: value is MISSING or value in values,
                   "absent or " + ", ".join(repr(v) for v in values))


def present() -> Matcher:
    return Matcher(lambda value: value is not MISSING and value is not None, "present")


def is_absent() -> Matcher:
    return Matcher(lambda value: value is MISSING, "absent")


def satisfies(test: Callable[[Any], bool], shown: str) -> Matcher:
    """Any test, shown in a report as ``shown`` (``"an integer >= 0"``)."""
    def safe(value: Any) -> bool:
        try:
            return value is not MISSING and bool(test(value))
        except (TypeError, ValueError):
            return False
    return Matcher(safe, shown)


def first_mismatch(payload: Any, expectations: Iterable[tuple[str, Any]]) -> tuple[str, Any, Any] | None:
    """The first (path, expected, got) that does not hold, or None."""
    for path, expected in expectations:
        value = at(payload, path)
        if not matches(expected, value):
            return path, expected, value
    return None


def field_is(path: str, expected: Any) -> Callable[[Any], bool]:
    """A ``where`` for ``expect_call``: the payload's field at ``path`` meets ``expected``."""
    return lambda payload: matches(expected, at(payload, path))
