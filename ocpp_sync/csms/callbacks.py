"""``csms.on_connect``, ``on_disconnect`` and ``on_accepted``: decorators and assignable attributes at once."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp_sync.signatures import check_handler

__all__ = ["StationCallbacks", "StationCallback"]

StationCallback = Callable[[Any], Any]


class StationCallbacks:
    """``csms.on_connect`` both as a decorator/registrar and as an assignable attribute."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, csms: Any, owner: type) -> Any:
        if csms is None:
            return self

        def register(callback: StationCallback) -> StationCallback:
            self._check(callback)
            csms._callbacks[self.name].append(callback)
            return callback
        return register

    def __set__(self, csms: Any, callback: StationCallback | None) -> None:
        if callback is not None:
            self._check(callback)
        csms._callbacks[self.name] = [] if callback is None else [callback]

    def _check(self, callback: StationCallback) -> None:
        check_handler(callback, ("station",), f"on_{self.name} callbacks", "callback")
