"""Resolving a future that someone else may have resolved or cancelled first.

A call's future can be settled by several threads (the reader with the answer,
a timer with a timeout, close() with ConnectionClosed) and cancelled by its
owner at any time; whoever comes second must not raise, so every layer
resolves futures through :func:`settle`.
"""
from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from typing import Any

__all__ = ["settle"]


def settle(future: Future[Any], result: Any = None, exc: BaseException | None = None) -> bool:
    """Give ``future`` its outcome (``exc`` if not None, else ``result``) unless it already has one.

    Returns False when it was cancelled or resolved before: the first outcome
    stands, and the caller need not care which thread won.
    """
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except InvalidStateError:
        return False
    return True
