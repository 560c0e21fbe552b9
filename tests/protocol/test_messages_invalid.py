"""Invalid payloads and objects of every message are refused with the right code and path.

For each message a full valid payload is built from its schema (every optional field
present, two items in outermost arrays, one deeper); then every field is a mutation site, and each
way the schema lets that field go wrong is tried: on the wire (from_payload) and, where
Python can express it, on the object (to_payload). The expected code follows the
issue's table, in the version's own spelling; the path is the wire-name path.
"""
from __future__ import annotations

import copy
import datetime as _dt
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from support import schemas

from ocpp_sync import ValidationError, from_payload, to_payload
from ocpp_sync.protocol import spec as _spec

CODES = {
    "1.6": {"format": "FormationViolation", "occurrence": "OccurenceConstraintViolation",
            "type": "TypeConstraintViolation", "property": "PropertyConstraintViolation"},
    "2.x": {"format": "FormatViolation", "occurrence": "OccurrenceConstraintViolation",
            "type": "TypeConstraintViolation", "property": "PropertyConstraintViolation"},
}


def code(kind: str, version: str) -> str:
    return CODES["1.6" if version == "1.6" else "2.x"][kind]


# -- a full valid payload ----------------------------------------------------------

GOOD_DATE_TIME = "2024-01-02T03:04:05Z"


def _items(node: dict[str, Any], depth: int) -> int:
    """Two items in an outermost array (so paths show a non-zero index), one deeper down:
    2.1 charging profiles nest arrays five deep, and three each made 120 kB payloads."""
    lo, hi = node.get("minItems", 0), node.get("maxItems")
    n = max(lo, 2 if depth == 0 else 1)
    return n if hi is None else min(n, hi)


def good_value(node: dict[str, Any], depth: int = 0) -> Any:
    """A valid value for a (ref-inlined) schema, with every optional property present."""
    if "enum" in node:
        return node["enum"][-1]
    t = node.get("type")
    if t == "object":
        return {k: good_value(v, depth) for k, v in node.get("properties", {}).items()}
    if t == "array":
        return [good_value(node["items"], depth + 1) for _ in range(_items(node, depth))]
    if t == "string":
        return GOOD_DATE_TIME if node.get("format") == "date-time" else "ok"
    if t == "integer":
        return node.get("minimum", 0) if "minimum" in node else min(node.get("maximum", 1), 1)
    if t == "number":
        lo = node.get("minimum")
        return lo if lo is not None else min(node.get("maximum", 1), 1)
    if t == "boolean":
        return True
    return {"any": [1, "json", None]}


# -- mutation sites ---------------------------------------------------------------

Step = tuple[str, Any]  # ("key", wire name) or ("index", i)


class Mutation(NamedTuple):
    kind: str         # the table row, for counting
    steps: tuple[Step, ...]
    value: Any        # the new value; DELETE removes the key
    code_kind: str    # format / occurrence / type / property
    path: str         # expected wire path


DELETE = object()
ABSENT = "absent"  # a mutation we accept, reading the field as absent


def wire_path(steps: tuple[Step, ...]) -> str:
    out = ""
    for kind, x in steps:
        out = f"{out}[{x}]" if kind == "index" else (f"{out}.{x}" if out else x)
    return out


def leaf_mutations(node: dict[str, Any], steps: tuple[Step, ...]) -> Iterator[Mutation]:
    path = wire_path(steps)

    def m(kind: str, value: Any, code_kind: str) -> Mutation:
        return Mutation(kind, steps, value, code_kind, path)

    t = node.get("type")
    if "enum" in node:
        yield m("enum value not allowed", "NotAnAllowedValue", "property")
        yield m("wrong type: integer for string", 7, "type")
        return
    if t == "string":
        yield m("wrong type: integer for string", 7, "type")
        yield m("wrong type: boolean for string", True, "type")
        yield m("wrong type: null", None, "type")
        if node.get("format") == "date-time":
            yield m("bad date-time", "not a date-time", "type")
            yield m("bad date-time: no zone", "2024-01-02T03:04:05", "type")
            yield m("bad date-time: month 13", "2024-13-02T03:04:05Z", "type")
            yield m("bad date-time: space separator", "2024-01-02 03:04:05Z", "type")
            yield m("bad date-time: offset minutes 99", "2024-01-02T03:04:05+01:99", "type")
            yield m("bad date-time: non-ASCII digits", "\u0662\u0660\u0662\u0664-01-02T03:04:05Z", "type")
        elif "maxLength" in node:
            yield m("string over maxLength", "x" * (node["maxLength"] + 1), "property")
    elif t == "integer":
        yield m("wrong type: boolean for integer", True, "type")
        yield m("wrong type: float for integer", 1.5, "type")
        yield m("wrong type: string for integer", "7", "type")
        yield m("wrong type: null", None, "type")
        yield from range_mutations(node, steps, integral=True)
    elif t == "number":
        yield m("wrong type: boolean for number", False, "type")
        yield m("wrong type: string for number", "7.5", "type")
        yield m("wrong type: null", None, "type")
        yield from range_mutations(node, steps, integral=False)
    elif t == "boolean":
        yield m("wrong type: string for boolean", "false", "type")
        yield m("wrong type: integer for boolean", 0, "type")
        yield m("wrong type: null", None, "type")


def range_mutations(node: dict[str, Any], steps: tuple[Step, ...], integral: bool) -> Iterator[Mutation]:
    path = wire_path(steps)
    step = 1 if integral else 0.5
    if "minimum" in node:
        yield Mutation("number below minimum", steps, node["minimum"] - step, "property", path)
    if "maximum" in node:
        yield Mutation("number above maximum", steps, node["maximum"] + step, "property", path)
    if "multipleOf" in node:
        bad = (node.get("minimum", 0) or 0) + node["multipleOf"] * 1.5
        yield Mutation("number not a multipleOf", steps, bad, "property", path)


def mutations(node: dict[str, Any], value: Any, steps: tuple[Step, ...] = ()) -> Iterator[Mutation]:
    """Every way to break the payload ``value`` (valid under ``node``) at or below ``steps``."""
    t = node.get("type")
    path = wire_path(steps)
    if t == "object":
        if steps:
            yield Mutation("wrong type: string for object", steps, "x", "type", path)
            yield Mutation("wrong type: array for object", steps, [], "type", path)
        if node.get("additionalProperties", True) is False:
            extra = steps + (("key", "zzNotInSchema"),)
            yield Mutation("extra field" + (" (nested)" if steps else " (top level)"),
                           extra, 1, "format", wire_path(extra))
        required = set(node.get("required", ()))
        for key, sub in node.get("properties", {}).items():
            here = steps + (("key", key),)
            if key in required:
                yield Mutation("required field missing" + (" (nested)" if steps else " (top level)"),
                               here, DELETE, "occurrence", wire_path(here))
            for mutation in mutations(sub, value[key], here):
                if mutation.value is None and mutation.steps == here and key not in required:
                    # The schema refuses it; we read a null optional field as absent (README).
                    mutation = mutation._replace(kind="null optional field", code_kind=ABSENT)
                yield mutation
    elif t == "array":
        yield Mutation("wrong type: object for array", steps, {}, "type", path)
        lo, hi = node.get("minItems"), node.get("maxItems")
        if lo:
            yield Mutation("array shorter than minItems", steps, value[: lo - 1], "occurrence", path)
        if hi is not None:
            yield Mutation("array longer than maxItems", steps, [value[0]] * (hi + 1), "occurrence", path)
        last = len(value) - 1
        yield from mutations(node["items"], value[last], steps + (("index", last),))
    else:
        yield from leaf_mutations(node, steps)


def apply(payload: Any, mutation: Mutation) -> Any:
    out = copy.deepcopy(payload)
    *parents, (_, last) = mutation.steps
    target = out
    for _, x in parents:
        target = target[x]
    if mutation.value is DELETE:
        del target[last]
    else:
        target[last] = copy.deepcopy(mutation.value)
    return out


# -- the object side: the same mutation on a built message -----------------------

def _attr_for(obj: Any, wire: str) -> str | None:
    for name, spec in _spec.specs(type(obj)):
        if isinstance(spec, _spec.FieldSpec) and spec.wire == wire:
            return name
    return None


NAIVE = _dt.datetime(2024, 1, 2, 3, 4, 5)


def object_value(mutation: Mutation) -> Any:
    """The Python value that breaks the object the way ``mutation`` breaks the payload;
    None where Python cannot express it (an unknown field, a null optional field)."""
    if mutation.value is DELETE:
        return None  # required attribute set to None
    if mutation.kind.startswith("extra field") or mutation.value is None:
        return DELETE
    if mutation.kind == "bad date-time: no zone":
        return NAIVE
    return mutation.value


def apply_to_object(obj: Any, mutation: Mutation) -> bool:
    """Apply a mutation to a message object in place; False when it has no object form."""
    value = object_value(mutation)
    if value is DELETE:
        return False
    *parents, (kind, last) = mutation.steps
    target = obj
    for step_kind, x in parents:
        target = target[x] if step_kind == "index" else getattr(target, _attr_for(target, x))
    if kind == "index":
        target[last] = value
        return True
    name = _attr_for(target, last)
    assert name is not None, (type(target), last)
    object.__setattr__(target, name, value)
    return True


# -- the tests ----------------------------------------------------------------------

def _cases() -> list[Any]:
    return [pytest.param(v, a, r, cls, id=f"{v}-{a}-{'request' if r else 'response'}")
            for v in schemas.VERSIONS for a, r, cls in schemas.messages(v)]


CASES = _cases()


def _outcome(fn: Any, *args: Any) -> tuple[str | None, str | None, str]:
    try:
        fn(*args)
    except ValidationError as exc:
        return exc.code, exc.path, ""
    except Exception as exc:  # noqa: BLE001 - anything but ValidationError is a failure to report
        return None, None, f"{type(exc).__name__}: {exc}"
    return None, None, "accepted"


def message_mutations(version: str, action: str, is_request: bool) -> tuple[dict[str, Any], list[Mutation]]:
    schema = schemas.inline_refs(schemas.message_schema(version, action, is_request))
    base = good_value(schema)
    return base, list(mutations(schema, base))


@schemas.requires_schemas
@pytest.mark.parametrize("version,action,is_request,cls", CASES)
def test_invalid_payloads_are_refused(version: str, action: str, is_request: bool, cls: type) -> None:
    base, found = message_mutations(version, action, is_request)
    check = schemas.validator(version, action, is_request)
    assert not list(check.iter_errors(base)), "the base payload itself must be valid"
    from_payload(cls, base)
    failures = []
    for payload in ([], "text", 7, None, True):
        got = _outcome(from_payload, cls, payload)
        if got[:2] != (code("format", version), ""):
            failures.append(f"payload {payload!r}: want {code('format', version)} at '', got {got}")
    for mutation in found:
        bad = apply(base, mutation)
        assert not check.is_valid(bad), f"{mutation} is valid under the official schema"
        got = _outcome(from_payload, cls, bad)
        if mutation.code_kind == ABSENT:
            if got[2] != "accepted":
                failures.append(f"null optional field at {mutation.path}: want it read as absent, got {got}")
            continue
        want = (code(mutation.code_kind, version), mutation.path)
        if got[:2] != want:
            failures.append(f"{mutation.kind} at {mutation.path} = {mutation.value!r:.40}: want {want}, got {got}")
    assert not failures, f"{len(failures)} of {len(found)} mutations misjudged:\n" + "\n".join(failures)


@schemas.requires_schemas
@pytest.mark.parametrize("version,action,is_request,cls", CASES)
def test_invalid_objects_are_not_sent(version: str, action: str, is_request: bool, cls: type) -> None:
    base, found = message_mutations(version, action, is_request)
    failures = []
    tried = 0
    for mutation in found:
        obj = from_payload(cls, base)
        if not apply_to_object(obj, mutation):
            continue
        tried += 1
        got = _outcome(to_payload, obj)
        want = (code(mutation.code_kind, version), mutation.path)
        if got[:2] != want:
            failures.append(f"{mutation.kind} at {mutation.path} = {object_value(mutation)!r:.40}: "
                            f"want {want}, got {got}")
    if not isinstance(to_payload(from_payload(cls, base)), dict):
        failures.append("the unmutated object did not convert")
    assert not failures, f"{len(failures)} of {tried} mutations misjudged:\n" + "\n".join(failures)


def mutation_counts() -> tuple[Counter, Counter]:
    """(payload mutations by kind, object mutations by kind) over every message."""
    wire, objects = Counter(), Counter()
    for version, action, is_request, _ in (p.values for p in CASES):
        _, found = message_mutations(version, action, is_request)
        wire["payload not an object"] += 5
        for mutation in found:
            wire[mutation.kind] += 1
            if object_value(mutation) is not DELETE:
                objects[mutation.kind] += 1
    return wire, objects


if __name__ == "__main__":
    w, o = mutation_counts()
    for kind in sorted(w):
        print(f"{kind:45} {w[kind]:6} {o.get(kind, 0):6}")
    print(f"{'total':45} {sum(w.values()):6} {sum(o.values()):6}")
