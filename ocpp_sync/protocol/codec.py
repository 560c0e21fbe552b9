"""Conversion between message objects and wire payloads, validating both ways.

Each generated class is compiled, on first use, into two straight-line Python
functions (payload -> object, object -> payload) that check every schema
constraint as they convert: one pass, no schema walking per message. The
functions are the structure and unstructure hooks of one cattrs ``Converter``
per protocol version (and a second one for lenient reading), so cattrs
dispatches and caches them.

Why not cattrs' own ``make_dict_structure_fn``: it coerces (``"7"`` becomes 7),
has no place for maxLength/enum/range checks, and reports failures as
exception groups without the wire path an OCPP CALLERROR needs.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import difflib
import enum
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs

from ocpp_sync.errors import FORMAT, OCCURRENCE, PROPERTY, TYPE, ValidationError, error_code
from ocpp_sync.protocol import spec as _spec
from ocpp_sync.protocol.datetimes import format_datetime, parse_datetime
from ocpp_sync.protocol.versions import version_module, version_of

__all__ = ["to_payload", "from_payload", "converter"]

log = logging.getLogger("ocpp_sync.messages")

T = TypeVar("T")

_MISSING = object()

# -- helpers the compiled functions call on their slow paths ----------------

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean",
               dict: "object", list: "array", type(None): "null"}


def _jtype(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _plain_str(value: Any) -> Any:
    """A str subclass (a str-valued enum member) as a plain str; None for anything else."""
    if isinstance(value, str):
        return value.value if isinstance(value, enum.Enum) else str.__str__(value)
    return None


def _plain_int(value: Any) -> Any:
    """An int for any integral number (JSON Schema counts 1.0 as an integer); None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def _plain_number(value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    return None


def _not_multiple(value: int | float, step: float) -> bool:
    """True unless value/step is whole, allowing for binary rounding (641 * 0.1 is 64.10000000000001)."""
    quotient = value / step
    return abs(quotient - round(quotient)) > 1e-9 * max(1.0, abs(quotient))


def _check_json(value: Any, path: str, code: str) -> Any:
    """Any-typed fields (DataTransfer ``data``): refuse what JSON cannot carry."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        raise ValidationError(code, path, "not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(code, path, "object keys must be strings")
            _check_json(v, f"{path}.{k}" if path else k, code)
        return value
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]", code)
        return value
    raise ValidationError(code, path, f"{type(value).__name__} cannot be sent as JSON")


def _unknown_fields(payload: dict[str, Any], known: frozenset[str], lenient: bool, code: str, cls: type) -> None:
    unknown = sorted(str(k) for k in payload if k not in known)
    if lenient:
        log.warning("%s: ignoring fields the schema does not allow: %s", cls.__name__, ", ".join(unknown))
        return
    close = difflib.get_close_matches(unknown[0], known, n=1)
    raise ValidationError(code, unknown[0], "field not allowed by the schema"
                          + (f" (did you mean {close[0]!r}?)" if close else ""))


def _missing(payload: dict[str, Any], wire: str) -> str:
    """Why a required field is missing, naming the misspelt key it was probably sent as."""
    close = difflib.get_close_matches(wire, [str(k) for k in payload], n=1)
    return "required field missing" + (f" (sent as {close[0]!r}?)" if close else "")


def _warn_long(path: str, length: int, limit: int) -> None:
    log.warning("%s: %d characters, over the limit of %d; let through (lenient)", path, length, limit)


def _plain_slots(cls: type, names: list[str]) -> bool:
    """True if an instance of ``cls`` is fully made by setting ``names`` on a bare object:
    a slotted, unfrozen attrs class whose __init__ assigns exactly those fields and
    does nothing more (no validator, converter, on-setattr hook or post-init)."""
    fields = attrs.fields(cls)
    own_setattr: object = cls.__setattr__
    return ("__slots__" in cls.__dict__ and own_setattr is object.__setattr__
            and not hasattr(cls, "__attrs_post_init__") and not hasattr(cls, "__attrs_pre_init__")
            and sorted(names) == sorted(f.name for f in fields)
            and all(f.init and f.validator is None and f.converter is None for f in fields))


# -- the compiler ---------------------------------------------------------------


class _Source:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self._counter = 0

    def const(self, value: Any, hint: str = "c") -> str:
        for name, existing in self.names.items():
            if existing is value:
                return name
        self._counter += 1
        name = f"_{hint}{self._counter}"
        self.names[name] = value
        return name

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}{self._counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


class _Compiler:
    """Writes the two conversion functions of one class for one mode (strict or lenient)."""

    def __init__(self, cls: type, lenient: bool, registry: _Registry) -> None:
        self.cls = cls
        self.lenient = lenient
        self.registry = registry
        version = version_of(cls)
        self.codes = {kind: error_code(kind, version) for kind in (FORMAT, OCCURRENCE, TYPE, PROPERTY)}
        self.fields = _spec.specs(cls)

    # shared pieces

    def _raise(self, src: _Source, indent: int, kind: str, path: str, message: str) -> None:
        src.emit(indent, f"raise _VE({self.codes[kind]!r}, {path}, {message})")

    def _type_error(self, src: _Source, indent: int, path: str, expected: str, var: str) -> None:
        self._raise(src, indent, TYPE, path, f"'expected {expected}, got ' + _jtype({var})")

    # payload -> object

    def structure_source(self) -> tuple[str, dict[str, Any]]:
        src = _Source()
        src.names.update(_VE=ValidationError, _jtype=_jtype, _MISSING=_MISSING, _cls=self.cls,
                         _missing=_missing)
        src.emit(0, "def structure(d):")
        src.emit(1, "if type(d) is not dict:")
        self._raise(src, 2, FORMAT, "''", f"'expected a JSON object for {self.cls.__name__}, got ' + _jtype(d)")
        src.emit(1, "n = 0")
        args, known, extra_attr = [], [], None
        for attr, spec in self.fields:
            if isinstance(spec, _spec.ExtraSpec):
                extra_attr = attr
                continue
            known.append(spec.wire)
            target = f"f_{attr}"
            args.append(f"{attr}={target}")
            path = repr(spec.wire)
            src.emit(1, f"v = d.get({spec.wire!r}, _MISSING)")
            if spec.required:
                src.emit(1, "if v is _MISSING:")
                self._raise(src, 2, OCCURRENCE, path, f"_missing(d, {path})")
                src.emit(1, "n += 1")
                self.structure_value(src, 1, spec.kind, "v", target, path)
            else:
                # A JSON null in an optional field is read as absent in both modes: real peers
                # write them (ocpp-go: "statusInfo": null), and None never goes out.
                src.emit(1, "if v is _MISSING or v is None:")
                src.emit(2, f"{target} = None")
                src.emit(2, "if v is None: n += 1")
                src.emit(1, "else:")
                src.emit(2, "n += 1")
                self.structure_value(src, 2, spec.kind, "v", target, path)
        known_name = src.const(frozenset(known), "known")
        if extra_attr is not None:
            src.emit(1, f"f_{extra_attr} = {{k: x for k, x in d.items() if k not in {known_name}}} "
                        "if n != len(d) else None")
            args.append(f"{extra_attr}=f_{extra_attr}")
        else:
            src.names["_unknown"] = _unknown_fields
            src.emit(1, "if n != len(d):")
            src.emit(2, f"_unknown(d, {known_name}, {self.lenient}, {self.codes[FORMAT]!r}, _cls)")
        if _plain_slots(self.cls, [attr for attr, _ in self.fields]):
            # Every field is set here, and __init__ would only assign them: building the
            # object directly skips parsing a call of keyword arguments per object.
            src.names["_new"] = object.__new__
            src.emit(1, "o = _new(_cls)")
            for arg in args:
                attr, value = arg.split("=", 1)
                src.emit(1, f"o.{attr} = {value}")
            src.emit(1, "return o")
        else:
            src.emit(1, f"return _cls({', '.join(args)})")
        return "\n".join(src.lines), src.names

    def structure_value(self, src: _Source, indent: int, kind: Any, var: str, target: str, path: str) -> None:
        """Emit code that checks ``var`` and stores the Python value in ``target``."""
        emit = src.emit
        if isinstance(kind, _spec.String):
            emit(indent, f"if type({var}) is not str:")
            self._type_error(src, indent + 1, path, "string", var)
            self._max_length(src, indent, kind, var, path)
            emit(indent, f"{target} = {var}")
        elif isinstance(kind, _spec.Integer):
            self._integer(src, indent, kind, var, path)
            emit(indent, f"{target} = {var}")
        elif isinstance(kind, _spec.Number):
            emit(indent, f"if type({var}) is not float and type({var}) is not int or {var} - {var} != 0:")
            self._type_error(src, indent + 1, path, "a finite number", var)
            self._range(src, indent, kind, var, path)
            emit(indent, f"{target} = {var}")
        elif isinstance(kind, _spec.Boolean):
            emit(indent, f"if type({var}) is not bool:")
            self._type_error(src, indent + 1, path, "boolean", var)
            emit(indent, f"{target} = {var}")
        elif isinstance(kind, _spec.DateTime):
            parse = src.const(parse_datetime, "parse_dt")
            emit(indent, f"if type({var}) is not str:")
            self._type_error(src, indent + 1, path, "a date-time string", var)
            emit(indent, "try:")
            emit(indent + 1, f"{target} = {parse}({var}{', True' if self.lenient else ''})")
            emit(indent, "except ValueError as exc:")
            self._raise(src, indent + 1, TYPE, path, "str(exc)")
        elif isinstance(kind, _spec.EnumOf):
            members = src.const({m.value: m for m in kind.enum}, "members")
            emit(indent, f"if type({var}) is not str:")
            self._type_error(src, indent + 1, path, "string", var)
            emit(indent, f"{target} = {members}.get({var})")
            emit(indent, f"if {target} is None:")
            allowed = ", ".join(m.value for m in kind.enum)
            self._raise(src, indent + 1, PROPERTY, path, f"repr({var}) + ' is not one of: {allowed}'")
        elif isinstance(kind, _spec.Object):
            fn = src.const(self.registry.structure_fn(kind.cls), "structure")
            emit(indent, f"if type({var}) is not dict:")
            self._type_error(src, indent + 1, path, "object", var)
            self._call_nested(src, indent, f"{target} = {fn}({var})", path)
        elif isinstance(kind, _spec.Array):
            self._array_shape(src, indent, kind, var, path)
            value = src.fresh("value")

            def convert_item(item_indent: int, item: str) -> str:
                self.structure_value(src, item_indent, kind.item, item, value, "''")
                return value

            emit(indent, f"{target} = {self._array_items(src, indent, var, path, convert_item)}")
        elif isinstance(kind, _spec.AnyValue):
            check = src.const(_check_json, "check_json")
            emit(indent, f"{target} = {check}({var}, {path}, {self.codes[TYPE]!r})")
        else:
            raise TypeError(f"unknown field kind {kind!r}")

    def _array_items(self, src: _Source, indent: int, var: str, path: str,
                     convert_item: Callable[[int, str], str]) -> str:
        """Emit a loop converting each item; an item's error gets ``path[i]`` prepended.

        Returns the name of the list that holds the converted items.
        """
        item, out, i = src.fresh("item"), src.fresh("out"), src.fresh("i")
        src.emit(indent, f"{out} = []")
        src.emit(indent, f"{i} = 0")
        src.emit(indent, "try:")
        src.emit(indent + 1, f"for {i}, {item} in enumerate({var}):")
        converted = convert_item(indent + 2, item)
        src.emit(indent + 2, f"{out}.append({converted})")
        src.emit(indent, "except _VE as e:")
        src.emit(indent + 1, f"e.prefix({path} + '[' + str({i}) + ']')")
        src.emit(indent + 1, "raise")
        return out

    def _call_nested(self, src: _Source, indent: int, call: str, path: str) -> None:
        """A nested object's errors carry their own path; prepend ours on the way out."""
        if path == "''":
            src.emit(indent, call)
            return
        src.emit(indent, "try:")
        src.emit(indent + 1, call)
        src.emit(indent, "except _VE as e:")
        src.emit(indent + 1, f"e.prefix({path})")
        src.emit(indent + 1, "raise")

    def _integer(self, src: _Source, indent: int, kind: _spec.Integer, var: str, path: str) -> None:
        """Both directions alike: an int, or an integral number read as one, within range."""
        src.names["_plain_int"] = _plain_int
        src.emit(indent, f"if type({var}) is not int:")
        src.emit(indent + 1, f"w = _plain_int({var})")
        src.emit(indent + 1, "if w is None:")
        self._type_error(src, indent + 2, path, "integer", var)
        src.emit(indent + 1, f"{var} = w")
        self._range(src, indent, kind, var, path)

    def _max_length(self, src: _Source, indent: int, kind: _spec.String, var: str, path: str) -> None:
        if kind.max_length is None:
            return
        src.emit(indent, f"if len({var}) > {kind.max_length}:")
        if self.lenient:
            src.emit(indent + 1, f"_warn_long({path}, len({var}), {kind.max_length})")
            src.names["_warn_long"] = _warn_long
        else:
            self._raise(src, indent + 1, PROPERTY, path,
                        f"'longer than {kind.max_length} characters (' + str(len({var})) + ')'")

    def _range(self, src: _Source, indent: int, kind: Any, var: str, path: str) -> None:
        if kind.minimum is not None:
            src.emit(indent, f"if {var} < {kind.minimum!r}:")
            self._raise(src, indent + 1, PROPERTY, path, f"'below the minimum of {kind.minimum}'")
        if kind.maximum is not None:
            src.emit(indent, f"if {var} > {kind.maximum!r}:")
            self._raise(src, indent + 1, PROPERTY, path, f"'above the maximum of {kind.maximum}'")
        if getattr(kind, "multiple_of", None) is not None:
            check = src.const(_not_multiple, "not_multiple")
            src.emit(indent, f"if {check}({var}, {kind.multiple_of!r}):")
            self._raise(src, indent + 1, PROPERTY, path, f"'not a multiple of {kind.multiple_of}'")

    def _array_shape(self, src: _Source, indent: int, kind: _spec.Array, var: str, path: str,
                     accept_tuple: bool = False) -> None:
        test = f"type({var}) is not list" + (f" and type({var}) is not tuple" if accept_tuple else "")
        src.emit(indent, f"if {test}:")
        self._type_error(src, indent + 1, path, "array", var)
        if kind.min_items is not None:
            src.emit(indent, f"if len({var}) < {kind.min_items}:")
            self._raise(src, indent + 1, OCCURRENCE, path, f"'fewer than {kind.min_items} items'")
        if kind.max_items is not None:
            src.emit(indent, f"if len({var}) > {kind.max_items}:")
            self._raise(src, indent + 1, OCCURRENCE, path, f"'more than {kind.max_items} items'")

    # object -> payload

    def unstructure_source(self) -> tuple[str, dict[str, Any]]:
        src = _Source()
        src.names.update(_VE=ValidationError, _jtype=_jtype, _cls=self.cls)
        src.emit(0, "def unstructure(o):")
        src.emit(1, "if type(o) is not _cls:")
        self._raise(src, 2, TYPE, "''", f"'expected {self.cls.__name__}, got ' + type(o).__name__")
        src.emit(1, "d = {}")
        known = [spec.wire for _, spec in self.fields if isinstance(spec, _spec.FieldSpec)]
        for attr, spec in self.fields:
            if isinstance(spec, _spec.ExtraSpec):
                merge = src.const(self._merge_extra, "merge_extra")
                src.emit(1, f"if o.{attr}:")
                src.emit(2, f"{merge}(d, o.{attr}, {frozenset(known)!r})")
                continue
            path = repr(spec.wire)
            src.emit(1, f"v = o.{attr}")
            if spec.required:
                src.emit(1, "if v is None:")
                self._raise(src, 2, OCCURRENCE, path, "'required field missing'")
                self.unstructure_value(src, 1, spec.kind, "v", path)
                src.emit(1, f"d[{spec.wire!r}] = v")
            else:
                src.emit(1, "if v is not None:")
                self.unstructure_value(src, 2, spec.kind, "v", path)
                src.emit(2, f"d[{spec.wire!r}] = v")
        src.emit(1, "return d")
        return "\n".join(src.lines), src.names

    def _merge_extra(self, d: dict[str, Any], extra: dict[str, Any], known: frozenset[str]) -> None:
        for key, value in extra.items():
            if not isinstance(key, str) or key in known:
                raise ValidationError(self.codes[FORMAT], str(key),
                                      "additional property clashes with a declared field or is not a string")
            d[key] = _check_json(value, key, self.codes[TYPE])

    def unstructure_value(self, src: _Source, indent: int, kind: Any, var: str, path: str) -> None:
        """Emit code that checks ``var`` and leaves its wire value in ``var``."""
        emit = src.emit
        if isinstance(kind, _spec.String):
            src.names["_plain_str"] = _plain_str
            emit(indent, f"if type({var}) is not str:")
            emit(indent + 1, f"{var} = _plain_str({var})")
            emit(indent + 1, f"if {var} is None:")
            self._raise(src, indent + 2, TYPE, path, "'expected a string'")
            self._max_length(src, indent, kind, var, path)
        elif isinstance(kind, _spec.Integer):
            self._integer(src, indent, kind, var, path)
        elif isinstance(kind, _spec.Number):
            src.names["_plain_number"] = _plain_number
            emit(indent, f"if type({var}) is not float and type({var}) is not int:")
            emit(indent + 1, f"w = _plain_number({var})")
            emit(indent + 1, "if w is None:")
            self._type_error(src, indent + 2, path, "a number", var)
            emit(indent + 1, f"{var} = w")
            emit(indent, f"if {var} - {var} != 0:")
            self._raise(src, indent + 1, TYPE, path, "'not a finite number'")
            self._range(src, indent, kind, var, path)
        elif isinstance(kind, _spec.Boolean):
            emit(indent, f"if type({var}) is not bool:")
            self._type_error(src, indent + 1, path, "boolean", var)
        elif isinstance(kind, _spec.DateTime):
            fmt = src.const(self._datetime_out, "datetime_out")
            emit(indent, f"{var} = {fmt}({var}, {path})")
        elif isinstance(kind, _spec.EnumOf):
            values = src.const(frozenset(m.value for m in kind.enum), "values")
            enum_cls = src.const(kind.enum, "enum")
            src.names["_plain_str"] = _plain_str
            # A member of the field's own enum is valid by construction; anything else is looked up.
            emit(indent, f"if type({var}) is {enum_cls}:")
            emit(indent + 1, f"{var} = {var}._value_")
            emit(indent, "else:")
            emit(indent + 1, f"if type({var}) is not str:")
            emit(indent + 2, f"{var} = _plain_str({var})")
            emit(indent + 2, f"if {var} is None:")
            self._raise(src, indent + 3, TYPE, path, "'expected a string or enum member'")
            emit(indent + 1, f"if {var} not in {values}:")
            allowed = ", ".join(m.value for m in kind.enum)
            self._raise(src, indent + 2, PROPERTY, path, f"repr({var}) + ' is not one of: {allowed}'")
        elif isinstance(kind, _spec.Object):
            fn = src.const(self.registry.unstructure_fn(kind.cls), "unstructure")
            self._call_nested(src, indent, f"{var} = {fn}({var})", path)
        elif isinstance(kind, _spec.Array):
            self._array_shape(src, indent, kind, var, path, accept_tuple=True)

            def convert_item(item_indent: int, item: str) -> str:
                self.unstructure_value(src, item_indent, kind.item, item, "''")
                return item

            emit(indent, f"{var} = {self._array_items(src, indent, var, path, convert_item)}")
        elif isinstance(kind, _spec.AnyValue):
            check = src.const(_check_json, "check_json")
            emit(indent, f"{var} = {check}({var}, {path}, {self.codes[TYPE]!r})")
        else:
            raise TypeError(f"unknown field kind {kind!r}")

    def _datetime_out(self, value: Any, path: str) -> str:
        try:
            if isinstance(value, _dt.datetime):
                return format_datetime(value, self.lenient)
            if isinstance(value, str):
                return format_datetime(parse_datetime(value, self.lenient), self.lenient)
        except ValueError as exc:
            raise ValidationError(self.codes[TYPE], path, str(exc)) from None
        raise ValidationError(self.codes[TYPE], path, f"expected a datetime, got {type(value).__name__}")


def _compile(source: str, names: dict[str, Any], fn_name: str, cls: type) -> Callable[..., Any]:
    namespace = dict(names)
    code = compile(source, f"<ocpp_sync {fn_name} {cls.__module__}.{cls.__qualname__}>", "exec")
    exec(code, namespace)
    fn: Callable[..., Any] = namespace[fn_name]
    fn.__ocpp_source__ = source  # type: ignore[attr-defined]
    return fn


class _Registry:
    """The compiled functions of one mode, built once per class and kept.

    No lock: two threads that meet an uncompiled class both compile it and get
    the same function, and a dict store is atomic, so a race costs one compile.
    """

    def __init__(self, lenient: bool) -> None:
        self.lenient = lenient
        self._structure: dict[type, Callable[[Any], Any]] = {}
        self._unstructure: dict[type, Callable[[Any], dict[str, Any]]] = {}

    def structure_fn(self, cls: type) -> Callable[[Any], Any]:
        fn = self._structure.get(cls)
        if fn is None:
            source, names = _Compiler(cls, self.lenient, self).structure_source()
            fn = self._structure[cls] = _compile(source, names, "structure", cls)
        return fn

    def unstructure_fn(self, cls: type) -> Callable[[Any], dict[str, Any]]:
        fn = self._unstructure.get(cls)
        if fn is None:
            source, names = _Compiler(cls, self.lenient, self).unstructure_source()
            fn = self._unstructure[cls] = _compile(source, names, "unstructure", cls)
        return fn


_STRICT = _Registry(lenient=False)
_LENIENT = _Registry(lenient=True)
_CONVERTERS: dict[tuple[str, bool], cattrs.Converter] = {}


def converter(version: str, *, lenient: bool = False) -> cattrs.Converter:
    """The cattrs converter of an OCPP version, with the validating hooks registered.

    Useful to embed messages in larger attrs structures of your own; ``structure``
    and ``unstructure`` on it validate exactly as ``from_payload``/``to_payload``.
    """
    key = (version, lenient)
    conv = _CONVERTERS.get(key)
    if conv is None:
        module = version_module(version)
        registry = _LENIENT if lenient else _STRICT

        def ours(cls: Any) -> bool:
            return isinstance(cls, type) and cls.__module__ == module.__name__ and attrs.has(cls)

        conv = cattrs.Converter()
        conv.register_structure_hook_factory(ours, lambda cls: _as_hook(registry.structure_fn(cls)))
        conv.register_unstructure_hook_factory(ours, registry.unstructure_fn)
        _CONVERTERS[key] = conv
    return conv


def _as_hook(fn: Callable[[Any], Any]) -> Callable[[Any, type], Any]:
    return lambda payload, _cls: fn(payload)


def to_payload(message: Any, *, lenient: bool = False) -> dict[str, Any]:
    """A message as its JSON payload (wire names, ``None`` left out), after validating it.

    Raises ValidationError (``.code``, ``.path``) when the message breaks its schema.
    """
    registry = _LENIENT if lenient else _STRICT
    fn = registry._unstructure.get(type(message))
    if fn is None:
        version_of(type(message))
        fn = registry.unstructure_fn(type(message))
    return fn(message)


def from_payload(cls: type[T], payload: Any, *, lenient: bool = False) -> T:
    """Validate a JSON payload and build the message (or datatype) ``cls`` from it.

    Raises ValidationError (``.code``, ``.path``) when the payload breaks the schema.
    ``lenient`` lets unknown fields, over-long strings, zoneless date-times and
    nulls in optional fields through, with a logged warning.
    """
    registry = _LENIENT if lenient else _STRICT
    fn = registry._structure.get(cls)
    if fn is None:
        version_of(cls)
        fn = registry.structure_fn(cls)
    return fn(payload)  # type: ignore[no-any-return]
