"""The exception hierarchy: one root, and each error also a matching builtin.

Codes are the OCPP-J error codes a peer expects in a CALLERROR. OCPP 1.6 spells
two of them differently from 2.x ("FormationViolation",
"OccurenceConstraintViolation"), so a code is picked per protocol version.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "OCPPError",
    "ValidationError",
    "CallError",
    "CallTimeout",
    "ConnectionClosed",
    "ProtocolError",
    "HandshakeError",
    "UpgradeRefused",
    "error_code",
    "normalise_code",
]

# Kinds of validation failure; each maps to one code per version.
FORMAT = "format"
OCCURRENCE = "occurrence"
TYPE = "type"
PROPERTY = "property"

_CODES: dict[str, dict[str, str]] = {
    "1.6": {
        FORMAT: "FormationViolation",
        OCCURRENCE: "OccurenceConstraintViolation",
        TYPE: "TypeConstraintViolation",
        PROPERTY: "PropertyConstraintViolation",
        "rpc": "FormationViolation",
    },
    "2.x": {
        FORMAT: "FormatViolation",
        OCCURRENCE: "OccurrenceConstraintViolation",
        TYPE: "TypeConstraintViolation",
        PROPERTY: "PropertyConstraintViolation",
        "rpc": "RpcFrameworkError",
    },
}

# Peers spell these either way; both mean the same failure.
_SYNONYMS = {
    "FormationViolation": "FormatViolation",
    "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
}


def error_code(kind: str, version: str) -> str:
    """The wire code for a failure kind under an OCPP version ("1.6", "2.0.1", "2.1")."""
    return _CODES["1.6" if version == "1.6" else "2.x"][kind]


def normalise_code(code: str) -> str:
    """Map a peer's code to the 2.x spelling, so callers compare one spelling."""
    return _SYNONYMS.get(code, code)


class OCPPError(Exception):
    """Root of every error this library raises.

    A handler may raise any subclass (or this class with a ``code``) to answer
    the peer's CALL with that CALLERROR code.
    """

    code: str = "GenericError"

    def __init__(self, description: str = "", *, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.description = description
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details if details is not None else {}

    def __str__(self) -> str:
        return self.description or self.code


class ValidationError(OCPPError, ValueError):
    """A message breaks its schema; ``code`` is the CALLERROR code to answer with.

    ``path`` is the wire-name path of the offending field, such as
    ``chargingStation.model`` or ``meterValue[0].sampledValue[2].value``; it is
    empty when the whole payload is at fault.
    """

    def __init__(self, code: str, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(self._describe(), code=code)

    def _describe(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def prefix(self, segment: str) -> None:
        """Prepend an outer field name, as the error travels up nested objects."""
        if not segment:
            return
        if not self.path:
            self.path = segment
        elif self.path.startswith("["):
            self.path = segment + self.path
        else:
            self.path = f"{segment}.{self.path}"
        self.description = self._describe()
        self.args = (self.description,)


class CallError(OCPPError):
    """The peer answered our CALL with a CALLERROR."""

    def __init__(self, code: str, description: str = "",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(description, code=code, details=details)

    def __str__(self) -> str:
        return f"{self.code}: {self.description}" if self.description else self.code


class CallTimeout(OCPPError, TimeoutError):
    """No answer to our CALL within the timeout."""

    code = "Timeout"


class ConnectionClosed(OCPPError, ConnectionError):
    """The connection is gone (or never was), so the call cannot complete."""

    code = "ConnectionClosed"


class ProtocolError(OCPPError):
    """The peer broke OCPP-J framing (answered with RpcFrameworkError/FormationViolation)."""

    code = "RpcFrameworkError"


# HTTP answers to an upgrade that the same request will get again.
PERMANENT_STATUS = frozenset({400, 401, 403, 404})


class HandshakeError(OCPPError, ConnectionError):
    """The websocket could not be opened.

    ``status`` is the HTTP status the server answered instead of 101 (None when
    no HTTP answer came, e.g. connection refused, or the 101 was unusable);
    ``reason`` is the server's short explanation when there is one.
    ``permanent`` says retrying cannot help (a refused subprotocol, 400, 401,
    403, 404), so a reconnecting station stops instead of hammering the server.
    """

    code = "HandshakeError"

    def __init__(self, description: str, *, status: int | None = None, reason: str = "",
                 permanent: bool | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.reason = reason
        self.permanent = status in PERMANENT_STATUS if permanent is None else permanent


class UpgradeRefused(HandshakeError):
    """The server's answer to an upgrade request: this HTTP status instead of 101.

    The one refusal every layer raises and reads: the listener, the CSMS's admission
    policy, an ``authenticate`` hook and the WSGI endpoint. ``reason`` goes back to
    the station in the response body, so it must reveal nothing secret; ``headers``
    are extra response headers (``Allow``, ``Sec-WebSocket-Version``...); ``kind``
    is the ``security.Reason`` value the security event hook hears; ``station_id``
    is set once the request named one.
    """

    def __init__(self, status: int = 401, reason: str = "unauthorized",
                 headers: Sequence[tuple[str, str]] = (), *, kind: str = "refused",
                 station_id: str | None = None) -> None:
        super().__init__(f"refused with HTTP {status}: {reason}", status=status, reason=reason)
        self.status: int = status
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)
        self.kind = kind
        self.station_id = station_id
