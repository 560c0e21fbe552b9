"""Checking at registration that a handler can be called the way the library will call it.

A CSMS handler with one parameter used to fail only when a station's call came
(``boot() takes 1 positional argument but 2 were given``), and the station got
InternalError for a mistake that was visible when the handler was registered.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

__all__ = ["check_handler"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def check_handler(handler: Any, arguments: Sequence[str], who: str, role: str = "handler") -> None:
    """Raise TypeError unless ``handler(*arguments)`` would bind.

    ``who`` and ``role`` name the callables in the message ("CSMS handlers are
    called as handler(station, request): ..."). A callable whose signature
    cannot be read (some builtins and extension types) passes: the call itself
    will tell.
    """
    expected = f"{who} are called as {role}({', '.join(arguments)})"
    if not callable(handler):
        raise TypeError(f"{expected}: {handler!r} is not callable")
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        raise TypeError(f"{expected} in a thread: {_name(handler)} is an async function, "
                        "whose call would only make a coroutine; use a plain def")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*(object() for _ in arguments))
    except TypeError:
        raise TypeError(f"{expected}: {_describe(handler, signature, len(arguments))}") from None


def _describe(handler: Any, signature: inspect.Signature, given: int) -> str:
    """What is wrong, the way Python would say it at the call, with the handler's parameters."""
    params = list(signature.parameters.values())
    bare = signature.replace(parameters=[p.replace(annotation=p.empty) for p in params],
                             return_annotation=signature.empty)
    shown = f"{_name(handler)}{bare}"
    positional = [p for p in params if p.kind in _POSITIONAL]
    if len(positional) < given and not any(p.kind is p.VAR_POSITIONAL for p in params):
        n = len(positional)
        return f"{shown} takes {n} positional argument{'' if n == 1 else 's'}"
    required = [p for p in positional if p.default is p.empty]
    if len(required) > given:
        n = len(required)
        return f"{shown} requires {n} positional argument{'' if n == 1 else 's'}"
    keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    return f"{shown} requires the keyword argument{'' if len(keywords) == 1 else 's'} " + \
        ", ".join(map(repr, keywords))


def _name(handler: Any) -> str:
    if isinstance(handler, functools.partial):
        return f"functools.partial({_name(handler.func)})"
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    if isinstance(name, str):
        return name.rsplit("<locals>.", 1)[-1]  # where a nested function was defined is noise here
    return f"{type(handler).__qualname__} instance"
