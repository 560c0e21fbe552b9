"""Who may open a connection: the one refusal policy of the listener and the WSGI endpoint.

Both ends call :meth:`Admission.admit` with the parsed request, so a station is
judged the same way whichever server accepted its socket, in this order:

1. with ``strict_station_ids``, the OCPP identity rules (400);
2. a known station, when the application gives a list or lookup (404);
3. the ``authenticate`` hook (401, or the hook's own status);
4. the subprotocol: the first of ours the station offered. With none in common
   there is no HTTP refusal: OCPP-J wants a 101 without ``Sec-WebSocket-Protocol``
   and an immediate close, which the caller does when ``admit`` returns None;
5. ``check_request`` (the application's own, and the CSMS's: duplicates, capacity).

Credentials come before the subprotocol so that no station gets a 101 it has not
earned. The per-address cap is the listener's (it is counted before a thread
exists); its default is here so that every layer agrees.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from ocpp_sync import security as _security
from ocpp_sync.errors import HandshakeError, UpgradeRefused
from ocpp_sync.websocket.base import ConnectionRequest

__all__ = ["Admission", "STRICT_STATION_IDS", "MAX_CONNECTIONS_PER_ADDRESS"]

log = logging.getLogger("ocpp_sync.transport")

#: Station ids must follow the OCPP identity rules unless the application says otherwise.
STRICT_STATION_IDS = True
#: No per-address cap by default: the chargers of a site often share one address behind NAT.
MAX_CONNECTIONS_PER_ADDRESS: int | None = None


class Admission:
    """The refusal policy for upgrade requests; see the module docstring for the order.

    ``subprotocols`` are ours, in order of preference; ``authenticate``,
    ``known_stations`` and ``strict_station_ids`` mean what ``ocpp_sync.security``
    says; ``check_request(request)`` refuses by raising HandshakeError (its status
    and reason stand; any other exception refuses with 500).
    """

    def __init__(self, subprotocols: Sequence[str], *,
                 authenticate: _security.Authenticate | None = None,
                 known_stations: _security.KnownStations | None = None,
                 strict_station_ids: bool = STRICT_STATION_IDS,
                 check_request: Callable[[ConnectionRequest], None] | None = None) -> None:
        if not subprotocols:
            raise ValueError("at least one subprotocol is required")
        self.subprotocols = tuple(subprotocols)
        self.authenticate = authenticate
        self.known_stations = known_stations
        self.strict_station_ids = strict_station_ids
        self.check_request = check_request

    def choose(self, offered: Sequence[str]) -> str | None:
        """Our most preferred subprotocol among ``offered``; None when there is none."""
        return next((p for p in self.subprotocols if p in offered), None)

    def admit(self, request: ConnectionRequest) -> ConnectionRequest | None:
        """The request with its subprotocol chosen, or None when no offered one is ours.

        Raises :class:`UpgradeRefused` (with ``station_id`` set) for every refusal.
        """
        station_id = request.station_id
        try:
            if self.strict_station_ids:
                _security.validate_station_id(station_id)
            _security.check_known_station(station_id, self.known_stations)
            if self.authenticate is not None:
                _security.check_credentials(station_id, request.headers, request.certificate,
                                            self.authenticate)
            chosen = self.choose(request.subprotocols)
            if chosen is None:
                return None
            request = replace(request, subprotocol=chosen)
            if self.check_request is not None:
                self._run_check(request)
        except UpgradeRefused as refused:
            if refused.kind != _security.Reason.INVALID_STATION_ID:
                refused.station_id = station_id   # an invalid id names no station
            raise
        except HandshakeError as exc:   # an authenticate hook's: its status stands
            raise UpgradeRefused(exc.status or 400, exc.reason or str(exc),
                                 kind=getattr(exc, "kind", _security.Reason.REFUSED),
                                 station_id=station_id) from None
        return request

    def _run_check(self, request: ConnectionRequest) -> None:
        assert self.check_request is not None
        try:
            self.check_request(request)
        except HandshakeError:
            raise
        except Exception:
            log.exception("check_request failed for %r", request.station_id)
            raise UpgradeRefused(500, "internal error", kind=_security.Reason.REFUSED) from None

    def no_common_subprotocol(self) -> str:
        """The close reason for a station that offered none of ours."""
        return f"no common subprotocol: this server speaks {', '.join(self.subprotocols)}"
