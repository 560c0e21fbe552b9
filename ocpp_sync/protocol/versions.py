"""The OCPP versions, their generated message modules, and what each message is.

Direction tables (``CS_TO_CSMS``, ``CSMS_TO_CS``) live in the generated modules;
this module answers questions about a message class: which version, which
action, request or response, and whether a side may register a handler for it.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import NamedTuple

import attrs

__all__ = ["VERSIONS", "VERSION_MODULES", "MessageInfo", "version_module", "message_info",
           "check_version", "check_handler_class", "version_of"]

VERSIONS = ("1.6", "2.0.1", "2.1")
VERSION_MODULES = {"1.6": "ocpp_sync.v16", "2.0.1": "ocpp_sync.v201", "2.1": "ocpp_sync.v21"}

class MessageInfo(NamedTuple):
    version: str
    action: str
    is_request: bool


def version_module(version: str) -> ModuleType:
    """The generated module of an OCPP version: "1.6", "2.0.1" or "2.1"."""
    try:
        name = VERSION_MODULES[version]
    except KeyError:
        raise ValueError(f"unknown OCPP version {version!r}; use one of {', '.join(VERSION_MODULES)}") from None
    return importlib.import_module(name)


_INFO: dict[type, MessageInfo] = {}


def message_info(message: type | object) -> MessageInfo:
    """Version, action and direction of a message class or instance."""
    cls = message if isinstance(message, type) else type(message)
    info = _INFO.get(cls)
    if info is None:
        version = version_of(cls)
        module = version_module(version)
        # Unlocked: threads that race here store the same entries.
        for table, is_request in ((module.REQUESTS, True), (module.RESPONSES, False)):
            for action, message_cls in table.items():
                _INFO[message_cls] = MessageInfo(version, action, is_request)
        info = _INFO.get(cls)
        if info is None:
            raise TypeError(f"{cls.__name__} is a datatype, not a message")
    return info


def version_of(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    version = getattr(module, "VERSION", None)
    if version not in VERSION_MODULES or not attrs.has(cls):
        raise TypeError(f"{cls!r} is not an OCPP message or datatype class")
    return str(version)


def check_version(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"unsupported OCPP version {version!r}; use one of {VERSIONS}")
    return version


def check_handler_class(request_cls: type, versions: tuple[str, ...], incoming: str) -> None:
    """Refuse at registration what could never be called, instead of silently never calling it."""
    try:
        info = message_info(request_cls)
    except TypeError:
        raise TypeError(f"{request_cls!r} is not an OCPP message class") from None
    if not info.is_request:
        raise ValueError(f"{request_cls.__name__} is a response; register a request class")
    if info.version not in versions:
        raise ValueError(f"{request_cls.__name__} is from OCPP {info.version}, "
                         f"not one of {', '.join(versions)}")
    module = version_module(info.version)
    if info.action not in getattr(module, incoming):
        raise ValueError(f"{info.action} is never sent to this side in OCPP {info.version}")


