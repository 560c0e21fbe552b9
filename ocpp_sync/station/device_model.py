"""The 2.0.1 / 2.1 device model: components, their variables, and what GetVariables and
SetVariables may do with each attribute.

A component is named (with an optional instance) and may belong to an EVSE or
one of its connectors; a variable (name, instance) of a component has up to four
attributes (Actual, Target, MinSet, MaxSet), each with a value, a mutability and
its persistent / constant flags, and one set of :class:`Characteristics` that
every value written is checked against. :meth:`DeviceModel.standard` loads the
standard controller components of :mod:`ocpp_sync.station.components`; the
application adds its own with :meth:`DeviceModel.add`.

The store is thread-safe and does no messaging: :meth:`DeviceModel.get` and
:meth:`DeviceModel.set` answer one GetVariables / SetVariables item each with
its status, :class:`ocpp_sync.station.DeviceModelHandlers` puts them on the wire.
Persistent attributes are written to the JSON file the application names (tmp
file and ``os.replace``, so a crash leaves the old or the new file whole) and
read back by :meth:`DeviceModel.load`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station import components as data
from ocpp_sync.station.values import Characteristics, InvalidValue, check_value

__all__ = ["ATTRIBUTE_TYPES", "MUTABILITIES", "ComponentId", "VariableId", "Attribute", "Variable",
           "Outcome", "DeviceModel"]

log = logging.getLogger("ocpp_sync.station.device_model")

#: AttributeEnumType, in the schema's order.
ATTRIBUTE_TYPES = ("Actual", "Target", "MinSet", "MaxSet")
#: MutabilityEnumType.
MUTABILITIES = ("ReadOnly", "WriteOnly", "ReadWrite")

_FILE_FORMAT = 1


@attrs.frozen
class ComponentId:
    """A component as GetVariables names it: name, instance, and the EVSE (and connector) it sits on."""

    name: str
    instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None


@attrs.frozen
class VariableId:
    """A variable of a component: name and instance."""

    name: str
    instance: str | None = None


@attrs.define
class Attribute:
    """One attribute of a variable; ``value`` None means not set (reported without a value)."""

    type: str = "Actual"
    value: str | None = None
    mutability: str = "ReadWrite"
    persistent: bool = False
    constant: bool = False

    def __attrs_post_init__(self) -> None:
        if self.type not in ATTRIBUTE_TYPES:
            raise ValueError(f"attribute type {self.type!r} is not one of {', '.join(ATTRIBUTE_TYPES)}")
        if self.mutability not in MUTABILITIES:
            raise ValueError(f"mutability {self.mutability!r} is not one of {', '.join(MUTABILITIES)}")

    @property
    def readable(self) -> bool:
        return self.mutability != "WriteOnly"

    @property
    def writable(self) -> bool:
        return self.mutability != "ReadOnly" and not self.constant


@attrs.define
class Variable:
    """A variable of ``component``: its attributes by type, its characteristics.

    ``reboot_required``: a change from the CSMS is stored but takes effect at the
    next boot, so SetVariables answers RebootRequired.
    """

    component: ComponentId
    id: VariableId
    characteristics: Characteristics
    attributes: dict[str, Attribute]
    reboot_required: bool = False


@attrs.frozen
class Outcome:
    """The answer to one GetVariables / SetVariables item: a status of the schema, the value
    read (GetVariables Accepted), and a reasonCode with detail when it is not Accepted."""

    status: str
    value: str | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.status in ("Accepted", "RebootRequired")


ComponentLike = ComponentId | str
VariableLike = VariableId | str


def _component(c: ComponentLike) -> ComponentId:
    return ComponentId(c) if isinstance(c, str) else c


def _variable(v: VariableLike) -> VariableId:
    return VariableId(v) if isinstance(v, str) else v


def measurands() -> tuple[str, ...]:
    """The measurands the standard *Measurands variables offer: 2.0.1's MeasurandEnumType, which
    2.1 keeps (2.1's additions would not fit the 1000 characters of a valuesList)."""
    return tuple(str(m.value) for m in version_module("2.0.1").MeasurandEnumType)


class DeviceModel:
    """The components and variables of one station of ``version`` ("2.0.1" or "2.1").

    ``path``: the JSON file persistent attributes are saved to after every change
    and read from by :meth:`load`; None keeps everything in memory.
    """

    def __init__(self, version: str = "2.0.1", *, path: str | os.PathLike[str] | None = None) -> None:
        if version not in ("2.0.1", "2.1"):
            raise ValueError(f"the device model is a 2.0.1 / 2.1 feature, not {version}")
        self.version = version
        self.path = None if path is None else Path(path)
        self._lock = threading.RLock()
        self._components: dict[ComponentId, dict[VariableId, Variable]] = {}
        self._readers: dict[tuple[ComponentId, VariableId], Callable[[], str]] = {}

    @classmethod
    def standard(cls, version: str = "2.0.1", *, evses: Mapping[int, int] | int = 1,
                 values: Mapping[tuple[ComponentLike, VariableLike], str] | None = None,
                 path: str | os.PathLike[str] | None = None) -> DeviceModel:
        """A model with the standard controller components, the ChargingStation, and an EVSE
        and Connector component for each EVSE of ``evses`` (EVSE id: connector count; an int n
        means EVSEs 1..n with one connector each).

        ``values`` maps (component, variable) to the application's starting Actual
        value, set before :meth:`load` reads ``path``: what the CSMS changed since wins.
        ValueError for a value that does not fit, KeyError for an unknown variable.
        """
        model = cls(version, path=path)
        layout = {i: 1 for i in range(1, evses + 1)} if isinstance(evses, int) else dict(evses)
        all_measurands = measurands()
        for row in data.STANDARD:
            allowed = all_measurands if row.values == data.MEASURANDS else \
                tuple(row.values.split(",")) if row.values else ()
            ch = Characteristics(row.data_type, unit=row.unit, min_limit=row.min_limit,
                                 max_limit=row.max_limit, values_list=allowed, supports_monitoring=True)
            if row.scope == "station":
                places: list[ComponentId] = [ComponentId(row.component)]
            elif row.scope == "evse":
                places = [ComponentId(row.component, evse_id=e) for e in sorted(layout)]
            else:
                places = [ComponentId(row.component, evse_id=e, connector_id=c)
                          for e in sorted(layout) for c in range(1, layout[e] + 1)]
            for place in places:
                attributes = [_attribute(row.kind, "Actual", row.value)]
                attributes += [_attribute(row.kind, kind, value) for kind, value in row.attributes]
                model.add(place, VariableId(row.variable, row.instance), ch, attributes)
        for (component, variable), value in (values or {}).items():
            if model.variable(component, variable) is None:
                raise KeyError(f"no variable {_variable(variable).name} in {_component(component).name}")
            outcome = model.set(component, variable, value, save=False)
            if not outcome.accepted:
                raise ValueError(f"{_component(component).name}.{_variable(variable).name}: {outcome.detail}")
        model.load()
        return model

    # -- building ------------------------------------------------------------------------------

    def add(self, component: ComponentLike, variable: VariableLike, characteristics: Characteristics,
            attributes: Iterable[Attribute] = (), *, reboot_required: bool = False) -> Variable:
        """Add (or replace) a variable of ``component``, creating the component if new.

        ``attributes`` default to one ReadWrite Actual without a value; starting
        values are checked against ``characteristics`` (ValueError if they break them).
        ``reboot_required``: the CSMS's changes take effect at the next boot (RebootRequired).
        """
        cid, vid = _component(component), _variable(variable)
        for name in (cid.name, cid.instance, vid.name, vid.instance):
            if name is not None and not 0 < len(name) <= 50:
                raise ValueError(f"a component or variable name or instance is 1 to 50 characters: {name!r}")
        by_type = {a.type: a for a in attributes} or {"Actual": Attribute()}
        for a in by_type.values():
            if a.value is not None:
                try:
                    a.value = check_value(a.value, characteristics)
                except InvalidValue as exc:
                    raise ValueError(f"{cid.name}.{vid.name} {a.type}: {exc.detail}") from None
        var = Variable(cid, vid, characteristics, by_type, reboot_required)
        with self._lock:
            self._components.setdefault(cid, {})[vid] = var
        return var

    def bind(self, component: ComponentLike, variable: VariableLike, read: Callable[[], str]) -> None:
        """Read the Actual value of a variable from ``read`` whenever it is asked for (a clock, a meter)."""
        cid, vid = _component(component), _variable(variable)
        with self._lock:
            if vid not in self._components.get(cid, {}):
                raise KeyError(f"no variable {vid.name} in {cid.name}")
            self._readers[(cid, vid)] = read

    # -- reading -------------------------------------------------------------------------------

    def components(self) -> list[ComponentId]:
        with self._lock:
            return list(self._components)

    def variables(self, component: ComponentLike | None = None) -> list[Variable]:
        """The variables of ``component``, or of every component, in the order added."""
        with self._lock:
            if component is not None:
                return list(self._components.get(_component(component), {}).values())
            return [v for variables in self._components.values() for v in variables.values()]

    def variable(self, component: ComponentLike, variable: VariableLike) -> Variable | None:
        with self._lock:
            return self._components.get(_component(component), {}).get(_variable(variable))

    def value(self, component: ComponentLike, variable: VariableLike, attribute: str = "Actual") -> str | None:
        """The application's read: the value whatever the mutability; KeyError if there is none such."""
        cid, vid = _component(component), _variable(variable)
        with self._lock:
            var = self._components[cid][vid]
            attr = var.attributes[attribute]
            read = self._readers.get((cid, vid)) if attribute == "Actual" else None
            stored = attr.value
        return read() if read is not None else stored

    def int_value(self, component: ComponentLike, variable: VariableLike, default: int) -> int:
        """An integer variable's Actual value, ``default`` when absent or unset."""
        try:
            value = self.value(component, variable)
        except KeyError:
            return default
        return default if value in (None, "") else int(value)

    def _find(self, cid: ComponentId, vid: VariableId, attribute: str) -> tuple[Variable | None, Outcome | None]:
        variables = self._components.get(cid)
        if variables is None:
            return None, Outcome("UnknownComponent", reason="NotFound", detail=f"no component {cid.name}")
        var = variables.get(vid)
        if var is None:
            return None, Outcome("UnknownVariable", reason="NotFound", detail=f"no variable {vid.name}")
        if attribute not in var.attributes:
            return None, Outcome("NotSupportedAttributeType", reason="UnsupportedParam",
                                 detail=f"{vid.name} has no {attribute} attribute")
        return var, None

    def get(self, component: ComponentLike, variable: VariableLike, attribute: str = "Actual") -> Outcome:
        """One GetVariables item: Accepted with the value (truncated to ReportingValueSize),
        or why not (a write-only attribute is Rejected)."""
        cid, vid = _component(component), _variable(variable)
        with self._lock:
            var, refused = self._find(cid, vid, attribute)
            if refused is not None:
                return refused
            assert var is not None
            if not var.attributes[attribute].readable:
                return Outcome("Rejected", reason="WriteOnly", detail=f"{vid.name} is write-only")
        value = self.value(cid, vid, attribute)
        return Outcome("Accepted", value=(value or "")[:self.reporting_value_size()])

    def reporting_value_size(self) -> int:
        return self.int_value("DeviceDataCtrlr", "ReportingValueSize", 2500)

    # -- writing -------------------------------------------------------------------------------

    def set(self, component: ComponentLike, variable: VariableLike, value: str, attribute: str = "Actual", *,
            by_csms: bool = False, save: bool = True) -> Outcome:
        """Check and store ``value``; one SetVariables item when ``by_csms``.

        The CSMS may not write a ReadOnly or constant attribute nor a value longer
        than ConfigurationValueSize; the application may (``by_csms=False``), but
        its value must fit the characteristics too. A persistent attribute is saved
        at once, unless ``save`` is False (a batch: call :meth:`save` after it).
        """
        cid, vid = _component(component), _variable(variable)
        with self._lock:
            var, refused = self._find(cid, vid, attribute)
            if refused is not None:
                return refused
            assert var is not None
            attr = var.attributes[attribute]
            if by_csms and not attr.writable:
                return Outcome("Rejected", reason="ReadOnly", detail=f"{vid.name} is read-only")
            size = self.int_value("DeviceDataCtrlr", "ConfigurationValueSize", 1000)
            if by_csms and len(value) > size:
                return Outcome("Rejected", reason="TooLargeElement", detail=f"longer than {size} characters")
            try:
                stored = check_value(value, var.characteristics)
            except InvalidValue as exc:
                return Outcome("Rejected", reason=exc.reason, detail=exc.detail)
            attr.value = stored
            if attr.persistent and save:
                self.save()
        if by_csms and var.reboot_required:
            return Outcome("RebootRequired", value=stored)
        return Outcome("Accepted", value=stored)

    # -- persistence ---------------------------------------------------------------------------

    def _persistent_values(self) -> list[dict[str, Any]]:
        out = []
        for cid, variables in self._components.items():
            for vid, var in variables.items():
                for attr in var.attributes.values():
                    if attr.persistent and attr.value is not None:
                        out.append({"component": cid.name, "componentInstance": cid.instance,
                                    "evseId": cid.evse_id, "connectorId": cid.connector_id,
                                    "variable": vid.name, "variableInstance": vid.instance,
                                    "attribute": attr.type, "value": attr.value})
        return out

    def save(self) -> None:
        """Write the persistent attributes to ``path`` (nothing without one), atomically."""
        if self.path is None:
            return
        with self._lock:
            text = json.dumps({"format": _FILE_FORMAT, "version": self.version,
                               "values": self._persistent_values()}, indent=1)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def load(self) -> int:
        """Read back what :meth:`save` wrote; returns how many values were restored.

        Values of variables no longer defined, or that no longer fit, are skipped
        (and logged): the model, not the file, decides what exists.
        """
        if self.path is None or not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as f:
            stored = json.load(f)
        restored = 0
        with self._lock:
            for item in stored.get("values", []):
                cid = ComponentId(item["component"], item.get("componentInstance"), item.get("evseId"),
                                  item.get("connectorId"))
                vid = VariableId(item["variable"], item.get("variableInstance"))
                var = self._components.get(cid, {}).get(vid)
                attr = None if var is None else var.attributes.get(item.get("attribute", "Actual"))
                if var is None or attr is None or not attr.persistent:
                    log.warning("%s: %s.%s is not a persistent attribute here, not restored",
                                self.path, cid.name, vid.name)
                    continue
                try:
                    attr.value = check_value(str(item["value"]), var.characteristics)
                except InvalidValue as exc:
                    log.warning("%s: %s.%s: %s, not restored", self.path, cid.name, vid.name, exc.detail)
                    continue
                restored += 1
        return restored


def _attribute(kind: str, attribute: str, value: str | None) -> Attribute:
    if kind == data.SETTING:
        return Attribute(attribute, value, "ReadWrite", persistent=True)
    if kind == data.SECRET:
        return Attribute(attribute, value, "WriteOnly", persistent=True)
    return Attribute(attribute, value, "ReadOnly", constant=kind == data.FIXED)
