"""The configuration keys of a 1.6 charge point, and GetConfiguration / ChangeConfiguration answered from them.

A :class:`ConfigurationStore` holds the keys of the profiles the station
implements (the table is :mod:`ocpp_sync.station.keys16`) plus the
application's own, each value kept as the text the CSMS reads. The store is
pure and thread-safe (one lock); :meth:`ConfigurationStore.attach` is the
application's opt-in to answering the two calls from it. Values the CSMS
changes reach the application through :meth:`~ConfigurationStore.on_change`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.keys16 import (
    BOOL,
    CORE,
    CSL,
    FEATURE_PROFILES,
    INT,
    MAX_VALUE_LENGTH,
    PROFILES,
    STANDARD_KEYS,
    STRING,
    KeyDefinition,
)

__all__ = ["ConfigurationStore", "Setting", "canonical", "ACCEPTED", "REJECTED", "REBOOT_REQUIRED",
           "NOT_SUPPORTED"]

log = logging.getLogger("ocpp_sync.station.configuration")

ACCEPTED = "Accepted"
REJECTED = "Rejected"
REBOOT_REQUIRED = "RebootRequired"
NOT_SUPPORTED = "NotSupported"

#: What an INT key holds at most when its definition sets no maximum (a 32-bit signed integer).
INT_MAX = 2**31 - 1
#: A key name as the 1.6 schema allows it.
MAX_KEY_LENGTH = 50
_FILE_FORMAT = "ocpp_sync.configuration16"
_INTEGER = re.compile(r"[+-]?[0-9]{1,10}")

#: A value as the typed accessors return it: bool, int, list of members, or text.
Value = bool | int | str | list[str]
#: What the application may pass as a value: the wire text or the Python value.
Given = str | bool | int | Sequence[str]
ChangeCallback = Callable[[str, Value], None]
Check = Callable[[Value], bool]


@attrs.frozen
class Setting:
    """A key as GetConfiguration reports it."""

    key: str
    readonly: bool
    value: str


def _as_text(value: Given) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    return ",".join(str(member) for member in value)


def canonical(definition: KeyDefinition, text: str, max_items: int | None = None) -> str:
    """``text`` as ``definition`` stores it ("TRUE" -> "true", "007" -> "7", "a, b" -> "a,b").

    ValueError, with a reason that never quotes the value, when the key does not
    take it: not its type, out of range, a member not allowed, more than
    ``max_items`` members, or longer than a configuration value may be.
    """
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError(f"{definition.name}: longer than {MAX_VALUE_LENGTH} characters")
    if definition.kind == BOOL:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{definition.name}: not true or false")
        return text.lower()
    if definition.kind == INT:
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"{definition.name}: not an integer")
        number = int(text)
        low = definition.minimum if definition.minimum is not None else -INT_MAX - 1
        high = definition.maximum if definition.maximum is not None else INT_MAX
        if not low <= number <= high:
            raise ValueError(f"{definition.name}: outside {low}..{high}")
        return str(number)
    if definition.kind == CSL:
        return _canonical_list(definition, text, max_items)
    if not definition.min_length <= len(text) <= definition.max_length:
        raise ValueError(f"{definition.name}: not {definition.min_length} to {definition.max_length} characters")
    return text


def _canonical_list(definition: KeyDefinition, text: str, max_items: int | None) -> str:
    if not text.strip():
        return ""
    members = [member.strip() for member in text.split(",")]
    for member in members:
        allowed = member and (definition.members is None or member in definition.members) and (
            definition.member_pattern is None or re.fullmatch(definition.member_pattern, member))
        if not allowed:
            raise ValueError(f"{definition.name}: a member is not allowed")
    if max_items is not None and len(members) > max_items:
        raise ValueError(f"{definition.name}: more than {max_items} members")
    return ",".join(members)


def parse(definition: KeyDefinition, text: str) -> Value:
    """A stored (canonical) text as its Python value."""
    if definition.kind == BOOL:
        return text == "true"
    if definition.kind == INT:
        return int(text)
    if definition.kind == CSL:
        return [member for member in text.split(",") if member]
    return text


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut (POSIX; a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _check_definition(definition: KeyDefinition) -> None:
    if definition.kind not in (BOOL, INT, CSL, STRING):
        raise ValueError(f"{definition.name}: kind {definition.kind!r} is not bool, int, CSL or string")
    if not 0 < len(definition.name) <= MAX_KEY_LENGTH:
        raise ValueError(f"a key name has 1 to {MAX_KEY_LENGTH} characters: {definition.name!r}")


class ConfigurationStore:
    """The configuration keys of one 1.6 charge point, answered and changed under one lock.

    Every key a selected profile requires is present; an optional one only when
    named in ``optional`` or given a value in ``values``, since for a boolean
    its presence tells the CSMS the feature exists. SupportedFeatureProfiles
    lists the selected profiles, and ConnectorPhaseRotation starts as
    ``Unknown`` for each of the NumberOfConnectors connectors.

    Args:
        profiles: The feature profiles the station implements (Core always, plus
            any of ``keys16.FEATURE_PROFILES``), and ``"Security"`` for the
            whitepaper's keys.
        values: Initial values by key name, as wire text or as bool / int / list
            of members; the other keys start at their definition's default.
        optional: Optional keys of the selected profiles to include at their default.
        keys: The application's own definitions: new keys, or a standard name
            with another definition (AuthorizeRemoteTxRequests read-only, say).
        path: A JSON file: its writable values are loaded when it exists, and it
            is rewritten after every change (see :meth:`save`).

    Raises:
        ValueError: An unknown profile or key, or an initial value its key does not take.
    """

    def __init__(self, profiles: Iterable[str] = (CORE,), *, values: Mapping[str, Given] | None = None,
                 optional: Iterable[str] = (), keys: Iterable[KeyDefinition] = (),
                 path: str | os.PathLike[str] | None = None) -> None:
        selected = {CORE, *profiles}
        unknown_profiles = selected - set(PROFILES)
        if unknown_profiles:
            raise ValueError(f"unknown profiles {sorted(unknown_profiles)}; the profiles are {list(PROFILES)}")
        self.profiles = tuple(p for p in PROFILES if p in selected)
        values = dict(values or {})
        own = {d.name: d for d in keys}
        for definition in own.values():
            _check_definition(definition)
        wanted = set(optional) | set(values)
        for name in wanted - set(own):
            standard = STANDARD_KEYS.get(name)
            if standard is None or standard.profile not in selected:
                raise ValueError(f"{name} is not a key of the profiles {list(self.profiles)} nor one of `keys`")
        self._definitions: dict[str, KeyDefinition] = {
            d.name: own.pop(d.name, d) for d in STANDARD_KEYS.values()
            if d.profile in selected and (d.required or d.name in wanted or d.name in own)}
        self._definitions.update(own)
        self._lock = threading.RLock()
        self._values = {name: d.default for name, d in self._definitions.items()}
        self._derive_defaults(values)
        for name, given in values.items():
            self._values[name] = _as_text(given)
        # defaults are trusted (AuthorizationKey's empty one means no password yet); the lists go
        # last, their length limits being other keys' values
        for name in sorted(values, key=lambda n: self._definitions[n].kind == CSL):
            self._values[name] = canonical(self._definitions[name], self._values[name], self._max_items(name))
        self._callbacks: dict[str, list[ChangeCallback]] = {}
        self._checks: dict[str, list[Check]] = {}
        self.path = None if path is None else Path(path)
        if self.path is not None and self.path.exists():
            self.load(self.path)

    def _derive_defaults(self, values: Mapping[str, Given]) -> None:
        if "SupportedFeatureProfiles" in self._values:
            self._values["SupportedFeatureProfiles"] = ",".join(p for p in self.profiles if p in FEATURE_PROFILES)
        if "ConnectorPhaseRotation" in self._values and "NumberOfConnectors" in values:
            connectors = int(canonical(self._definitions["NumberOfConnectors"], _as_text(values["NumberOfConnectors"])))
            self._values["ConnectorPhaseRotation"] = ",".join(f"{i}.Unknown" for i in range(1, connectors + 1))

    def _max_items(self, name: str) -> int | None:
        count_key = self._definitions[name].count_key
        if count_key is None or count_key not in self._values:
            return None
        return int(self._values[count_key])

    # -- what the station has ---------------------------------------------------------------------

    def definitions(self) -> list[KeyDefinition]:
        """The definitions of every key present, in the order GetConfiguration lists them."""
        return list(self._definitions.values())

    def definition(self, key: str) -> KeyDefinition:
        """The definition of ``key``; KeyError when the station does not have it."""
        return self._known(key)

    def __contains__(self, key: object) -> bool:
        return key in self._definitions

    def value(self, key: str) -> Value:
        """The value of ``key`` as Python: bool, int, list of members (CSL) or str; KeyError if absent."""
        with self._lock:
            return parse(self._known(key), self._values[key])

    def int_value(self, key: str) -> int:
        """The value of an INT key (``store.int_value("HeartbeatInterval")``)."""
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key} is not an integer key")
        return value

    def bool_value(self, key: str) -> bool:
        """The value of a BOOL key."""
        value = self.value(key)
        if not isinstance(value, bool):
            raise TypeError(f"{key} is not a boolean key")
        return value

    def list_value(self, key: str) -> list[str]:
        """The members of a CSL key."""
        value = self.value(key)
        if not isinstance(value, list):
            raise TypeError(f"{key} is not a comma separated list key")
        return value

    def text(self, key: str) -> str:
        """The value of any key as the text GetConfiguration would report."""
        with self._lock:
            self._known(key)
            return self._values[key]

    # -- GetConfiguration and ChangeConfiguration -------------------------------------------------

    def get(self, keys: Iterable[str] | None = None) -> tuple[list[Setting], list[str]]:
        """What GetConfiguration answers: the known keys among ``keys`` and the unknown ones.

        No keys (None or empty) means every key. A write-only key (AuthorizationKey)
        is never among the known ones: left out of "every key", and listed as
        unknown when asked for by name. A key asked for twice is answered once.
        More distinct keys than GetConfigurationMaxKeys is refused whole with an
        OCPPError whose code is OccurrenceConstraintViolation (the CALLERROR the
        CSMS gets), rather than answering some of them and guessing which.
        """
        asked = list(dict.fromkeys(keys or ()))
        with self._lock:
            limit = self._values.get("GetConfigurationMaxKeys")
            if limit is not None and len(asked) > int(limit):
                raise OCPPError(f"{len(asked)} keys asked for, GetConfigurationMaxKeys is {limit}",
                                code="OccurrenceConstraintViolation")
            names = asked or list(self._definitions)
            known = [Setting(name, self._definitions[name].readonly, self._values[name]) for name in names
                     if name in self._definitions and not self._definitions[name].write_only]
            found = {s.key for s in known}
        return known, [name for name in asked if name not in found]

    def change(self, key: str, value: str) -> str:
        """What ChangeConfiguration answers, changing the value when it is Accepted or RebootRequired.

        NotSupported for a key the station does not have; Rejected for a
        read-only key, a value the key's type does not take, a lower
        SecurityProfile, a value a check (:meth:`add_check`) refuses, or a file
        (``path``) that cannot be written (the old value stays). A key whose
        definition says so answers RebootRequired: the new value is stored and
        reported at once, taking effect when the application restarts. The change
        callbacks run after the change, outside the lock; one that raises is
        logged and does not alter the answer. Values are never logged.
        """
        with self._lock:
            definition = self._definitions.get(key)
            if definition is None:
                log.info("ChangeConfiguration of an unknown key %s", key[:MAX_KEY_LENGTH])
                return NOT_SUPPORTED
            if definition.readonly:
                log.info("ChangeConfiguration of the read-only %s rejected", key)
                return REJECTED
            try:
                text = canonical(definition, value, self._max_items(key))
            except ValueError as exc:
                log.info("ChangeConfiguration rejected: %s", exc)
                return REJECTED
            new = parse(definition, text)
            if definition.increase_only and int(text) < int(self._values[key]):
                log.info("ChangeConfiguration of %s rejected: it only increases", key)
                return REJECTED
            if not all(self._passes(check, key, new) for check in self._checks.get(key, ())):
                log.info("ChangeConfiguration of %s rejected by the application's check", key)
                return REJECTED
            try:
                self._store(key, text)
            except OSError:
                log.exception("the configuration could not be saved to %s; %s keeps its value", self.path, key)
                return REJECTED
            callbacks = list(self._callbacks.get(key, ()))
        status = REBOOT_REQUIRED if definition.reboot_required else ACCEPTED
        log.info("ChangeConfiguration of %s: %s", key, status)
        for callback in callbacks:
            try:
                callback(key, new)
            except Exception:  # the application's code must not change the answer
                log.exception("a change callback of %s failed", key)
        return status

    @staticmethod
    def _passes(check: Check, key: str, value: Value) -> bool:
        try:
            return bool(check(value))
        except Exception:  # a check that fails refuses the value
            log.exception("a check of %s failed", key)
            return False

    def set(self, key: str, value: Given) -> None:
        """The application sets a value, read-only keys included; no callback runs.

        KeyError for a key the station does not have, ValueError for a value it does not take.
        """
        with self._lock:
            self._store(key, canonical(self._known(key), _as_text(value), self._max_items(key)))

    def _store(self, key: str, text: str) -> None:
        """Keep ``text`` for ``key`` and save; on an OSError the old value stays and the error goes up."""
        old = self._values[key]
        self._values[key] = text
        if self.path is not None:
            try:
                self.save(self.path)
            except OSError:
                self._values[key] = old
                raise

    def _known(self, key: str) -> KeyDefinition:
        definition = self._definitions.get(key)
        if definition is None:
            raise KeyError(f"this station has no configuration key {key}")
        return definition

    def on_change(self, key: str, callback: ChangeCallback) -> ChangeCallback:
        """Call ``callback(key, value)`` after each accepted ChangeConfiguration of ``key``
        (``value`` typed as :meth:`value` returns it). It runs in the thread answering the CSMS,
        before the answer is sent, so it should be short. Returns ``callback``; KeyError if absent."""
        with self._lock:
            self._known(key)
            self._callbacks.setdefault(key, []).append(callback)
        return callback

    def add_check(self, key: str, check: Check) -> Check:
        """Refuse (Rejected) a ChangeConfiguration of ``key`` whose typed value ``check`` returns
        False for, say a SecurityProfile whose certificates are not installed. Returns ``check``."""
        with self._lock:
            self._known(key)
            self._checks.setdefault(key, []).append(check)
        return check

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the writable values to ``path`` as JSON, atomically (a temporary file in the same
        directory, then os.replace), readable by the owner only: it holds the AuthorizationKey."""
        target = Path(path)
        with self._lock:  # held to the end, so that two saves cannot land in the wrong order
            document = {"format": _FILE_FORMAT, "version": 1,
                        "values": {name: self._values[name] for name, d in self._definitions.items()
                                   if not d.readonly}}
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(document, file, indent=1, sort_keys=True)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, target)
            except BaseException:
                os.unlink(temporary)
                raise
            _sync_directory(target.parent)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Take the writable values saved in ``path``. A saved key the station does not have, that is
        read-only here, or whose value it no longer takes is skipped (and logged by name)."""
        document: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format") != _FILE_FORMAT:
            raise ValueError(f"{path} is not a saved 1.6 configuration")
        saved = document.get("values")
        if not isinstance(saved, dict):
            raise ValueError(f"{path} has no values")
        with self._lock:
            for name, text in saved.items():
                definition = self._definitions.get(name)
                if definition is None or definition.readonly or not isinstance(text, str):
                    log.warning("%s: the saved %s is not taken", path, name)
                    continue
                try:
                    self._values[name] = canonical(definition, text, self._max_items(name))
                except ValueError as exc:
                    log.warning("%s: the saved value is not taken (%s)", path, exc)

    # -- the handlers ---------------------------------------------------------------------------

    def attach(self, cp: Any) -> None:
        """Answer GetConfiguration and ChangeConfiguration of ``cp`` (a 1.6 ChargePoint) from this store."""
        if cp.version != "1.6":
            raise ValueError(f"configuration keys are OCPP 1.6; this charge point speaks {cp.version}")
        m = version_module("1.6")
        cp.on(m.GetConfigurationRequest)(self.on_get_configuration)
        cp.on(m.ChangeConfigurationRequest)(self.on_change_configuration)

    def on_get_configuration(self, request: Any) -> Any:
        m = version_module("1.6")
        known, unknown = self.get(request.key)
        return m.GetConfigurationResponse(
            configuration_key=[m.KeyValue(key=s.key, readonly=s.readonly, value=s.value) for s in known] or None,
            unknown_key=unknown or None)

    def on_change_configuration(self, request: Any) -> Any:
        return version_module("1.6").ChangeConfigurationResponse(status=self.change(request.key, request.value))
