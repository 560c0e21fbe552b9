"""Typed per-action calls (``cp.v16.boot_notification(...)``) and handler groups (``cp.on_group(obj)``).

Mixins of ChargePoint, Station and CSMS. The call classes and the tables of
profiles / functional blocks are generated next to each version's messages
(``ocpp_sync.v16.calls``, ``ocpp_sync.v16.profiles``, ...).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from types import ModuleType
from typing import Any, NamedTuple, cast

from ocpp_sync.protocol.versions import version_module
from ocpp_sync.v16 import calls as v16_calls
from ocpp_sync.v16 import profiles as v16_profiles
from ocpp_sync.v21 import calls as v21_calls
from ocpp_sync.v21 import profiles as v21_profiles
from ocpp_sync.v201 import calls as v201_calls
from ocpp_sync.v201 import profiles as v201_profiles

__all__ = ["Unanswered", "ChargePointActions", "StationActions", "CSMSGroups", "profile_actions"]

log = logging.getLogger("ocpp_sync.groups")

PROFILE_MODULES: dict[str, ModuleType] = {"1.6": v16_profiles, "2.0.1": v201_profiles, "2.1": v21_profiles}
ACCESSORS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


class Unanswered(NamedTuple):
    """An action of a declared profile that this side receives and nothing answers."""

    version: str
    profile: str
    action: str


def profile_actions(version: str, profile: str) -> tuple[str, frozenset[str]]:
    """(name, actions) of a 1.6 profile or a 2.x functional block, by name or by letter ("K")."""
    tables = PROFILE_MODULES[version]
    name = tables.LETTERS.get(profile, profile)
    if name not in tables.PROFILES:
        known = ", ".join([*tables.LETTERS, *tables.PROFILES])
        raise ValueError(f"OCPP {version} has no profile {profile!r}; use one of {known}")
    return name, frozenset(tables.PROFILES[name])


class _Groups:
    """``on_group`` and ``unanswered``: what ChargePoint and CSMS share."""

    _incoming = ""  # the direction table of the calls this side answers

    def _group_versions(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _declared(self) -> list[tuple[str, str]]:
        return cast("list[tuple[str, str]]", self.__dict__.setdefault("_declared_profiles", []))

    def on_group(self, group: object, *, profiles: Iterable[str] = (), version: str | None = None) -> None:
        """Answer calls with ``group``'s methods named ``on_<action>`` (``on_reset``, ``on_boot_notification``).

        ``profiles`` declares the 1.6 feature profiles (``"Core"``, ``"SmartCharging"``, ...) or
        2.x functional blocks (``"K"`` or ``"SmartCharging"``) the group stands for: the actions of
        those that nothing answers are logged as a warning when the connection starts and listed
        by :meth:`unanswered`. ``version`` limits the group to one of this side's versions.
        Raises ValueError, registering nothing, for an unknown profile, for a method named after
        an action that never travels towards this side, or when no method answers anything.
        """
        versions = self._group_versions()
        if version is not None:
            if version not in versions:
                raise ValueError(f"OCPP {version} is not one of {', '.join(versions)}")
            versions = (version,)
        declared: list[tuple[str, str]] = []
        for profile in profiles:
            found = [(v, profile_actions(v, profile)[0]) for v in versions if _defines(v, profile)]
            if not found:
                profile_actions(versions[-1], profile)  # raises, naming the known ones
            declared.extend(found)
        handlers: list[tuple[type, Any]] = []
        wrong_way: set[str] = set()
        answered: set[str] = set()
        for v in versions:
            module = version_module(v)
            names = PROFILE_MODULES[v].HANDLER_NAMES
            incoming = getattr(module, self._incoming)
            for action, name in names.items():
                method = getattr(group, name, None)
                if not callable(method):
                    continue
                if action in incoming:
                    handlers.append((module.REQUESTS[action], method))
                    answered.add(name)
                else:
                    wrong_way.add(name)
        wrong_way -= answered  # DataTransfer and the like: answered in another version
        if wrong_way:
            raise ValueError(f"{type(group).__name__}: {', '.join(sorted(wrong_way))} answer calls this side "
                             f"never receives in OCPP {', '.join(versions)}")
        if not handlers:
            raise ValueError(f"{type(group).__name__} has no on_<action> method for a call this side receives")
        on = cast(Any, self).on
        for request_cls, method in handlers:
            on(request_cls)(method)
        self._declared().extend(d for d in declared if d not in self._declared())

    def unanswered(self) -> list[Unanswered]:
        """The actions of the declared profiles that this side receives and has no handler for."""
        handlers = cast(Any, self)._handlers
        out: list[Unanswered] = []
        for version, profile in self._declared():
            module = version_module(version)
            actions = PROFILE_MODULES[version].PROFILES[profile] & getattr(module, self._incoming)
            out.extend(Unanswered(version, profile, action) for action in sorted(actions)
                       if module.REQUESTS[action] not in handlers)
        return out

    def _warn_unanswered(self) -> None:
        missing = self.unanswered()
        if missing:
            log.warning("%s: nothing answers %s", getattr(self, "id", "the CSMS"),
                        ", ".join(f"{m.action} ({m.version} {m.profile})" for m in missing))


def _defines(version: str, profile: str) -> bool:
    tables = PROFILE_MODULES[version]
    return profile in tables.LETTERS or profile in tables.PROFILES


class _Calls:
    def _speaking(self, version: str) -> Any:
        """This object as the calls' sender, if it speaks ``version``."""
        own = cast(Any, self).version
        if own != version:
            raise AttributeError(f"{self!r} speaks OCPP {own}: use .{ACCESSORS[own]}, not .{ACCESSORS[version]}")
        return self


class ChargePointActions(_Calls, _Groups):
    """``cp.v16`` / ``cp.v201`` / ``cp.v21``: the typed calls of the charge point's version.

    One accessor per version, so that mypy knows each method's request and
    response types; the one of another version raises AttributeError.
    """

    _incoming = "CSMS_TO_CS"

    def _group_versions(self) -> tuple[str, ...]:
        return (cast(Any, self).version,)

    @property
    def v16(self) -> v16_calls.ChargePointCalls:
        return v16_calls.ChargePointCalls(self._speaking("1.6"))

    @property
    def v201(self) -> v201_calls.ChargePointCalls:
        return v201_calls.ChargePointCalls(self._speaking("2.0.1"))

    @property
    def v21(self) -> v21_calls.ChargePointCalls:
        return v21_calls.ChargePointCalls(self._speaking("2.1"))


class StationActions(_Calls):
    """``station.v16`` / ``station.v201`` / ``station.v21``: the typed calls of the station's version."""

    @property
    def v16(self) -> v16_calls.StationCalls:
        return v16_calls.StationCalls(self._speaking("1.6"))

    @property
    def v201(self) -> v201_calls.StationCalls:
        return v201_calls.StationCalls(self._speaking("2.0.1"))

    @property
    def v21(self) -> v21_calls.StationCalls:
        return v21_calls.StationCalls(self._speaking("2.1"))


class CSMSGroups(_Groups):
    """``csms.on_group(obj)``: handler methods take ``(station, request)``."""

    _incoming = "CS_TO_CSMS"

    def _group_versions(self) -> tuple[str, ...]:
        return tuple(cast(Any, self).versions)
