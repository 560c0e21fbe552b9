"""Where the tests find the official OCPP JSON schemas, and how they read them.

The schemas are reference data kept outside the repository: ``../shared/ocpp-schemas``
beside the repo root, else the copies the PyPI package ``ocpp`` ships. Tests that
need them skip, with the reason, when neither is there.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
TAGS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
VERSIONS = tuple(TAGS)


def _shared_dir() -> Path | None:
    candidate = REPO.parent / "shared" / "ocpp-schemas"
    if all((candidate / tag).is_dir() for tag in TAGS.values()):
        return candidate
    return None


def _package_dirs() -> dict[str, Path]:
    """The versions whose schemas the ``ocpp`` package ships (releases for Python 3.10 lack 2.1)."""
    try:
        spec = importlib.util.find_spec("ocpp")
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = Path(list(spec.submodule_search_locations)[0])
    dirs = {tag: root / tag / "schemas" for tag in TAGS.values()}
    return {tag: d for tag, d in dirs.items() if d.is_dir()}


@functools.cache
def available_dirs() -> dict[str, Path]:
    """{"v16": folder, ...} for every version whose schemas are reachable."""
    shared = _shared_dir()
    if shared is not None:
        return {tag: shared / tag for tag in TAGS.values()}
    return _package_dirs()


def version_dirs() -> dict[str, Path] | None:
    """All three versions' folders, or None unless every one is reachable."""
    dirs = available_dirs()
    return dirs if len(dirs) == len(TAGS) else None


SKIP_REASON = ("official OCPP schemas not found: neither ../shared/ocpp-schemas beside the repo "
               "nor the `ocpp` package's ocpp/v16/schemas (pip install ocpp)")
requires_schemas = pytest.mark.skipif(not available_dirs(), reason=SKIP_REASON)


def version_folder(version: str) -> Path:
    """The schema folder of ``version``; skips the test when this one is not reachable."""
    folder = available_dirs().get(TAGS[version])
    if folder is None:
        pytest.skip(f"no OCPP {version} schemas here: {SKIP_REASON}")
    return folder


def schema_path(version: str, action: str, is_request: bool) -> Path:
    folder = version_folder(version)
    name = f"{action}Response"
    if is_request:
        # 1.6 names requests by action alone; so does 2.1's NotifyPeriodicEventStream.
        name = f"{action}Request" if (folder / f"{action}Request.json").exists() else action
    return folder / f"{name}.json"


@functools.cache
def message_schema(version: str, action: str, is_request: bool) -> dict[str, Any]:
    """The schema of one message; 2.x files start with a BOM, hence utf-8-sig."""
    return json.loads(schema_path(version, action, is_request).read_text(encoding="utf-8-sig"))


def schema_actions(version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(request actions, response actions) as the schema files name them."""
    folder = version_folder(version)
    requests, responses = [], []
    for path in sorted(folder.glob("*.json")):
        stem = path.stem
        if stem.endswith("Response"):
            responses.append(stem[: -len("Response")])
        else:
            requests.append(stem[: -len("Request")] if stem.endswith("Request") else stem)
    return tuple(requests), tuple(responses)


# An RFC 3339 date-time exactly as section 5.6 writes it ("T" and "Z" may be lower
# case; no space separator; ASCII digits only). Independent of ocpp_sync's parser, and
# of whether jsonschema's optional rfc3339-validator dependency is installed.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))\Z", re.ASCII)


def is_rfc3339(text: Any) -> bool:
    if not isinstance(text, str):
        return True  # format only constrains strings
    m = _RFC3339.match(text)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    oh, om = m.group(9), m.group(10)
    if oh is not None and (int(oh) > 23 or int(om) > 59):
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    try:
        _dt.date(year or 1, month, day)  # year 0000 is valid RFC 3339 but not a Python date
    except ValueError:
        return False
    return True


def instant(text: str) -> _dt.datetime:
    """The instant an RFC 3339 string names (a reference parser for comparisons)."""
    m = _RFC3339.match(text)
    assert m is not None, text
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = m.group(7)
    micro = int(frac[1:7].ljust(6, "0")) if frac else 0
    zone = m.group(8)
    offset = _dt.timedelta(0) if zone in ("Z", "z") else (
        (1 if zone[0] == "+" else -1) * _dt.timedelta(hours=int(m.group(9)), minutes=int(m.group(10))))
    leap = second == 60
    base = _dt.datetime(year, month, day, hour, minute, 59 if leap else second, micro)
    return base - offset + _dt.timedelta(seconds=1 if leap else 0)


def format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(is_rfc3339)  # always ours: strict, and present without extras
    return checker


@functools.cache
def validator(version: str, action: str, is_request: bool):
    """A jsonschema validator of the schema's own draft, checking date-time formats."""
    import jsonschema

    schema = message_schema(version, action, is_request)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=format_checker())


def messages(version: str) -> Iterator[tuple[str, bool, type]]:
    """(action, is_request, class) for every message of a version."""
    from ocpp_sync.protocol.versions import version_module

    module = version_module(version)
    for action, cls in module.REQUESTS.items():
        yield action, True, cls
    for action, cls in module.RESPONSES.items():
        yield action, False, cls


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every local ``$ref`` replaced by its definition, and no ``$id``.

    hypothesis-jsonschema resolves refs against ``$id`` (an urn in the 2.x files) and
    then refuses to fetch it; the OCPP definitions are not recursive, so inlining is exact.
    """
    definitions = schema.get("definitions", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()
                    if k not in ("$id", "id", "$schema", "definitions", "description", "javaType", "comment")
                    or (k in ("id",) and not isinstance(v, str))}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)



_LEAVES: dict[str, Any] = {}


def payloads(schema: dict[str, Any], max_extra_items: int = 2):
    """A hypothesis strategy for payloads valid under a (ref-inlined) message schema.

    Objects and arrays are walked here (arrays capped at minItems + ``max_extra_items``,
    open objects such as customData get extra properties); every leaf value comes from
    hypothesis-jsonschema's strategy for that leaf schema. Whole-message ``from_schema``
    is far too slow for the 2.1 charging profiles (minutes for a dozen examples).
    """
    import hypothesis_jsonschema
    from hypothesis import strategies as st

    def build(node: dict[str, Any]):
        t = node.get("type")
        if t == "object":
            props = node.get("properties", {})
            required = set(node.get("required", ()))
            fixed = st.fixed_dictionaries(
                {k: build(v) for k, v in props.items() if k in required},
                optional={k: build(v) for k, v in props.items() if k not in required})
            if node.get("additionalProperties", True) is False:
                return fixed
            extra_keys = st.text(min_size=1, max_size=8).filter(lambda k: k not in props)
            extra = st.dictionaries(extra_keys, build({}), max_size=2)
            return st.tuples(fixed, extra).map(lambda pair: {**pair[1], **pair[0]})
        if t == "array":
            lo = node.get("minItems", 0)
            hi = min(node.get("maxItems", lo + max_extra_items), lo + max_extra_items)
            return st.lists(build(node.get("items", {})), min_size=lo, max_size=hi)
        key = json.dumps(node, sort_keys=True)
        leaf = _LEAVES.get(key)
        if leaf is None:
            leaf = _LEAVES[key] = hypothesis_jsonschema.from_schema(node) if node else st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=10),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                max_leaves=5)
        return leaf

    return build(schema)
