"""The CSMS's side of one station's connection: what a handler gets as ``station``."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.protocol.registration import Registration, RegistrationStatus
from ocpp_sync.runtime.actions import StationActions
from ocpp_sync.runtime.connection import Connection, call_with_dict
from ocpp_sync.runtime.history import History

__all__ = ["STATION_HISTORY_BYTES", "STATION_HISTORY_SIZE", "Station"]

R = TypeVar("R")

#: Frames kept per station by default: small, as a CSMS may hold thousands of stations.
STATION_HISTORY_SIZE = 100
#: Characters of frame text kept per station by default: the last few dozen ordinary
#: messages, so big ones cannot multiply a station's share (the requests kept for
#: ``expect`` have the same bound, and cost more once parsed).
STATION_HISTORY_BYTES = 64 * 1024


class Station(StationActions):
    """The CSMS's side of one station's connection.

    ``request`` is the HTTP upgrade request it connected with (its headers,
    path and offered subprotocols), or None when served through
    :meth:`CSMS.handle`. ``history`` holds the connection's last frames.
    """

    def __init__(self, id: str, version: str, request: Any = None,
                 history_size: int | None = STATION_HISTORY_SIZE,
                 history_bytes: int | None = STATION_HISTORY_BYTES) -> None:
        self.id = id
        self.version = version
        self.request = request
        self.history = History(history_size, history_bytes)
        self._connection: Connection | None = None
        self._registration: Registration | None = None

    @property
    def registration_status(self) -> RegistrationStatus:
        """Accepted, Pending or Rejected as its last boot answer said; Unknown: no boot on record
        (or the CSMS checks no registration)."""
        registration = self._registration
        return RegistrationStatus.UNKNOWN if registration is None else registration.status

    @property
    def remote_address(self) -> str:
        return self._connection.remote_address if self._connection is not None else ""

    def _live(self) -> Connection:
        if self._connection is None:
            raise ConnectionClosed(f"station {self.id!r} is not connected")
        return self._connection

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.closed

    def send(self, message: Any, timeout: float | None = None) -> Any:
        """Send a request to the station and block for the response object."""
        return self._live().send(message, timeout)

    def send_async(self, message: Any, timeout: float | None = None) -> Future[Any]:
        """Like :meth:`send`, but returns a Future at once."""
        return self._live().send_async(message, timeout)

    def call(self, action: str, payload: Mapping[str, Any],
             timeout: float | None = None) -> dict[str, Any] | None:
        """Send a wire-format payload and get the wire-format response, both validated."""
        return call_with_dict(self._live(), action, payload, timeout)

    def close(self, *, drain: float = 0.0) -> None:
        """Close this station's connection; idempotent.

        ``drain`` seconds at most are given to our calls in flight to be answered first.
        """
        self._close(1000, "", drain)

    def _close(self, code: int, reason: str, drain: float, timeout: float = 5.0) -> None:
        if self._connection is not None:
            self._connection.close(code, reason, drain=drain, timeout=timeout)

    def expect(self, request_cls: type[R], timeout: float | None = 30.0,
               where: Callable[[R], bool] | None = None) -> R:
        """The next ``request_cls`` request (``where`` holding) once its handler answered it.

        Requests that came before the call count too, each returned once;
        see :meth:`History.expect`.
        """
        return self.history.expect(request_cls, timeout, where)

    def __repr__(self) -> str:
        return f"<Station {self.id!r} OCPP {self.version} {self.remote_address}>"
