"""Every exception, and every decision of which OCPP-J error code a failure is answered with.

Each failure has a kind; the kind's code comes from one table, per version:
OCPP 1.6 spells some codes differently from 2.x ("FormationViolation",
"OccurenceConstraintViolation") and lacks others (2.x's RpcFrameworkError and
MessageTypeNotSupported are FormationViolation in 1.6), so a code is always
looked up for the connection's version here, never written out elsewhere.
"""
from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any

__all__ = [
    "OCPPError",
    "ValidationError",
    "CallError",
    "CallTimeout",
    "StationTimeout",
    "ConnectionClosed",
    "ProtocolError",
    "HandshakeError",
    "FramingError",
    "UpgradeRefused",
    "StationNotConnected",
    "Replaced",
    "NotRegistered",
    "AddressInUse",
    "CaseFailed",
    "CaseInconclusive",
    "CLOSE_REPLACED",
    "ClusterUnavailable",
    "error_code",
    "wire_code",
    "normalise_code",
]

# Kinds of failure; each maps to one code per version.
FORMAT = "format"              # the payload is not of the schema's shape
OCCURRENCE = "occurrence"      # a required field is missing
TYPE = "type"                  # a field has the wrong JSON type
PROPERTY = "property"          # a field's value breaks its constraint (length, enum, range)
RPC = "rpc"                    # the frame is not a valid OCPP-J message (or reuses a live id)
MESSAGE_TYPE = "message_type"  # the frame's message type number is not one this version has
UNKNOWN_ACTION = "unknown_action"          # the receiver does not know the action at all
UNSUPPORTED_ACTION = "unsupported_action"  # it knows the action but does not answer it here
INTERNAL = "internal"          # our handler failed, or answered with something invalid
SECURITY = "security"          # the sender may not send this now (e.g. before it is registered)

_CODES: dict[str, tuple[str, str]] = {   # kind: (OCPP 1.6 code, OCPP 2.x code)
    FORMAT: ("FormationViolation", "FormatViolation"),
    OCCURRENCE: ("OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
    TYPE: ("TypeConstraintViolation", "TypeConstraintViolation"),
    PROPERTY: ("PropertyConstraintViolation", "PropertyConstraintViolation"),
    RPC: ("FormationViolation", "RpcFrameworkError"),
    MESSAGE_TYPE: ("FormationViolation", "MessageTypeNotSupported"),
    # OCPP-J 1.6 section 4.2.3 and 2.0.1 Part 4 section 4.3: NotImplemented is an action the
    # receiver does not know, NotSupported one it recognises but does not support.
    UNKNOWN_ACTION: ("NotImplemented", "NotImplemented"),
    UNSUPPORTED_ACTION: ("NotSupported", "NotSupported"),
    INTERNAL: ("InternalError", "InternalError"),
    SECURITY: ("SecurityError", "SecurityError"),
}

# The codes each version defines; a handler's code outside them is sent as InternalError.
_DEFINED_16 = frozenset({
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError",
})
_DEFINED_2X = frozenset({
    "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
    "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
    "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError", "SecurityError",
    "TypeConstraintViolation",
})
_TO_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "FormationViolation",
    "MessageTypeNotSupported": "FormationViolation",
}
# Peers spell these either way; both mean the same failure.
_SYNONYMS = {
    "FormationViolation": "FormatViolation",
    "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
}


def error_code(kind: str, version: str) -> str:
    """The wire code for a failure kind under an OCPP version ("1.6", "2.0.1", "2.1")."""
    return _CODES[kind][0 if version == "1.6" else 1]


def wire_code(code: str, version: str) -> str:
    """The code to put on the wire for an error a handler raised with ``code``.

    Codes are respelled for the version; a code the version does not define
    (say "Timeout" from a CallTimeout escaping a handler) becomes InternalError
    rather than confusing the peer.
    """
    if version == "1.6":
        code = _TO_16.get(code, code)
        return code if code in _DEFINED_16 else _CODES[INTERNAL][0]
    code = _SYNONYMS.get(code, code)
    return code if code in _DEFINED_2X else _CODES[INTERNAL][1]


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

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from args and attributes, not by calling __init__ again: subclasses take
        other parameters than the ``args`` they keep (ValidationError(code, path, message)
        keeps one description), so the default pickling failed for them."""
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type[OCPPError], args: tuple[Any, ...], state: dict[str, Any]) -> OCPPError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


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


class StationTimeout(CallTimeout):
    """No station with the id connected within the timeout (``CSMS.wait_for_station``).

    A CallTimeout, so one ``except ocpp_sync.CallTimeout`` covers every wait a script makes.
    """


class ConnectionClosed(OCPPError, ConnectionError):
    """The connection is gone (or never was), so the call cannot complete."""

    code = "ConnectionClosed"


#: The websocket close code (RFC 6455 leaves 4000-4999 to applications) with which a CSMS
#: closes a station's connection when a newer one under the same id takes over.
CLOSE_REPLACED = 4000


class Replaced(ConnectionClosed):
    """The CSMS closed this connection because a newer one under the same station id took over.

    The charge point does not reconnect after it: two clients sharing one id (a
    notebook cell run twice, a second test bench) would otherwise replace each
    other for ever. Close the other one, or give this one its own id.
    """

    code = "Replaced"


class AddressInUse(OCPPError, OSError):
    """The port is taken; ``holder`` is the CSMS of this process that listens on it, if one does.

    In a notebook, re-running the cell that starts a CSMS meets the first one,
    still listening: the message says how to stop it.
    """

    code = "AddressInUse"

    def __init__(self, message: str, holder: object = None) -> None:
        super().__init__(message)
        self.errno = errno.EADDRINUSE
        self.strerror = message
        self.holder = holder

    def __str__(self) -> str:
        return self.description


class StationNotConnected(ConnectionClosed):
    """``ocpp_sync.cluster``: no live node holds a connection to the station, or it was lost during the call.

    A ConnectionClosed (so also a ConnectionError): callers that already
    handle a dropped connection handle this the same way.
    """

    code = "StationNotConnected"


class ClusterUnavailable(OCPPError, ConnectionError):
    """``ocpp_sync.cluster``: Redis cannot be reached, so a station on another node cannot be called."""

    code = "ClusterUnavailable"


class FramingError(OCPPError, ValueError):
    """The text is not a well-formed OCPP-J frame for this version.

    ``code`` and ``unique_id`` are what to answer with; ``message_type`` is the
    frame's type number when it is one this version knows (so the receiver can
    avoid answering a broken CALLERROR with another CALLERROR), else None.
    """

    def __init__(self, code: str, unique_id: str, description: str,
                 message_type: int | None = None) -> None:
        super().__init__(description, code=code)
        self.unique_id = unique_id
        self.message_type = message_type


class ProtocolError(OCPPError):
    """The peer broke OCPP-J framing (answered with RpcFrameworkError/FormationViolation)."""

    code = "RpcFrameworkError"


class NotRegistered(OCPPError, RuntimeError):
    """The station's registration status forbids this call now (see docs/registration.md).

    Raised locally, before anything is written: a CSMS calling a Pending station
    with RemoteStartTransaction, say, or any station it Rejected.
    """

    code = "SecurityError"


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


class CaseFailed(OCPPError, AssertionError):
    """``ocpp_sync.conformance``: the peer under test broke what a test case checks.

    ``frame`` names the frame (``action``, ``message_id``, ``direction``, ``type``),
    ``field`` the JSON path in its payload, ``expected`` and ``got`` the two values.
    """

    def __init__(self, description: str, *, frame: dict[str, Any] | None = None,
                 field: str | None = None, expected: Any = None, got: Any = None) -> None:
        super().__init__(description)
        self.frame = frame
        self.field = field
        self.expected = expected
        self.got = got


class CaseInconclusive(OCPPError):
    """``ocpp_sync.conformance``: a case could not decide (a need not configured, a prompt skipped)."""
