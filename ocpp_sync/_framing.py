"""OCPP-J frames: the JSON arrays that carry calls, results and errors.

Parsing never raises anything but :class:`FramingError`, which already says
which CALLERROR code to answer with and for which message id, so the
connection can always answer a peer's bad frame instead of dying on it.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ._errors import error_code

__all__ = [
    "CALL",
    "CALLRESULT",
    "CALLERROR",
    "CALLRESULTERROR",
    "SEND",
    "MAX_ID_LENGTH",
    "NO_ID",
    "Call",
    "CallResult",
    "CallErrorFrame",
    "Send",
    "Frame",
    "FramingError",
    "parse",
    "serialise",
    "new_message_id",
]

CALL = 2
CALLRESULT = 3
CALLERROR = 4
CALLRESULTERROR = 5  # 2.1 only: an error about a CALLRESULT we were sent
SEND = 6  # 2.1 only: a request that gets no answer at all

MAX_ID_LENGTH = 36
NO_ID = "-1"  # the id the spec prescribes when the peer's id cannot be read

_TYPES_BY_VERSION = {
    "1.6": frozenset({CALL, CALLRESULT, CALLERROR}),
    "2.0.1": frozenset({CALL, CALLRESULT, CALLERROR}),
    "2.1": frozenset({CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND}),
}


@dataclass(frozen=True)
class Call:
    unique_id: str
    action: str
    payload: Any

    def to_list(self) -> list[Any]:
        return [CALL, self.unique_id, self.action, self.payload]


@dataclass(frozen=True)
class Send:
    unique_id: str
    action: str
    payload: Any

    def to_list(self) -> list[Any]:
        return [SEND, self.unique_id, self.action, self.payload]


@dataclass(frozen=True)
class CallResult:
    unique_id: str
    payload: Any

    def to_list(self) -> list[Any]:
        return [CALLRESULT, self.unique_id, self.payload]


@dataclass(frozen=True)
class CallErrorFrame:
    """A CALLERROR, or with ``message_type=CALLRESULTERROR`` its 2.1 sibling."""

    unique_id: str
    code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    message_type: int = CALLERROR

    def to_list(self) -> list[Any]:
        return [self.message_type, self.unique_id, self.code, self.description, self.details]


Frame = Call | CallResult | CallErrorFrame | Send


class FramingError(Exception):
    """The text is not a well-formed frame for this version.

    ``code`` and ``unique_id`` are what to answer with; ``message_type`` is the
    frame's type number when it is one this version knows (so a caller can
    avoid answering a broken CALLERROR with another CALLERROR), else None.
    """

    def __init__(self, code: str, unique_id: str, description: str,
                 message_type: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.unique_id = unique_id
        self.description = description
        self.message_type = message_type


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _reject_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is out of range")
    return value


# json.loads takes NaN, Infinity and 1e999 (as inf) by default; none is JSON. One decoder and one
# encoder for the process: json.loads/dumps with options build a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_reject_float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# Ids only have to be unique among one connection's calls; a counter is cheap, and the random
# prefix keeps a late answer meant for an earlier process from matching one of ours.
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def _loads(text: str | bytes) -> Any:
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


def parse(text: str | bytes, version: str) -> Frame:
    """Turn one websocket text message into a frame, or raise FramingError."""
    rpc = error_code("rpc", version)
    try:
        data = _loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise FramingError(rpc, NO_ID, f"not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise FramingError(rpc, NO_ID, "a message must be a non-empty JSON array")
    message_type = data[0]
    unique_id = data[1] if len(data) > 1 else None
    if not isinstance(unique_id, str):
        raise FramingError(rpc, NO_ID, "the message id must be a string")
    if isinstance(message_type, bool) or not isinstance(message_type, int):
        raise FramingError(rpc, unique_id, "the message type must be an integer")
    if message_type not in _TYPES_BY_VERSION[version]:
        code = "FormationViolation" if version == "1.6" else "MessageTypeNotSupported"
        raise FramingError(code, unique_id,
                           f"message type {message_type} is not supported in OCPP {version}")
    if len(unique_id) > MAX_ID_LENGTH:
        raise FramingError(rpc, unique_id,
                           f"the message id is longer than {MAX_ID_LENGTH} characters",
                           message_type)
    if message_type in (CALL, SEND):
        if len(data) != 4 or not isinstance(data[2], str):
            raise FramingError(rpc, unique_id,
                               "expected [type, id, action, payload] with a string action",
                               message_type)
        cls = Call if message_type == CALL else Send
        return cls(unique_id, data[2], data[3])
    if message_type == CALLRESULT:
        if len(data) != 3:
            raise FramingError(rpc, unique_id, "expected [3, id, payload]", message_type)
        return CallResult(unique_id, data[2])
    if (len(data) != 5 or not isinstance(data[2], str) or not isinstance(data[3], str)
            or not isinstance(data[4], dict)):
        raise FramingError(rpc, unique_id,
                           "expected [type, id, code, description, details]", message_type)
    return CallErrorFrame(unique_id, data[2], data[3], data[4], message_type)


def serialise(frame: Frame) -> str:
    """Compact JSON, UTF-8 kept as is: the smallest text every peer can read."""
    return _ENCODER.encode(frame.to_list())


def new_message_id() -> str:
    """A fresh id, far shorter than the 36 characters OCPP allows."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER)}"
