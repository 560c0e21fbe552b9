"""OCPP-J frames: the JSON arrays that carry calls, results and errors.

Parsing never raises anything but :class:`FramingError`, which already says
which CALLERROR code to answer with and for which message id, so the
connection can always answer a peer's bad frame instead of dying on it.

The JSON itself is read and written by orjson: for a 1.9 KB TransactionEvent
frame, serialise takes 1.9 us and parse 4.5 us, against 15 and 11 with the
standard library's ``json``. The stdlib encoder stays as the fallback for what
orjson writes differently or refuses (see :func:`serialise`). Reading, orjson
differs from the stdlib decoder used before in three ways, all kept:

* an integer literal outside [-2**63, 2**64) is read as the nearest float (as
  JavaScript's and most peers' parsers read it); the stdlib gave the exact int.
  No OCPP field holds such a number, and the cheapest scan for 19 digits in a
  row found would add a third to the parse, so it is not looked for;
* a lone surrogate (``"\\ud800"``) is refused as not valid JSON: it is no
  Unicode character, so no peer can mean one;
* arrays and objects nest up to 1024 deep; the stdlib stopped at Python's
  recursion limit (about 988 deep in a connection's thread). A call nested in
  between is answered under its own id (a schema error, or a format error
  "nested too deep to read" where the codec's walk of free-form data runs out
  of stack), not RpcFrameworkError under "-1"; the connection goes on.
"""
from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ocpp_sync.errors import MESSAGE_TYPE, RPC, FramingError, error_code

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
    "call_text",
    "result_text",
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


# orjson refuses NaN, Infinity and numbers beyond a double (1e400) by itself: the stdlib decoder
# had to be told to. Writing, these options make orjson raise TypeError, and so leave to the stdlib
# encoder, datetimes and dataclasses (orjson would write them, the stdlib refuses) and subclasses of
# str, int, float, dict and list (the stdlib writes them through their base's methods, or refuses);
# orjson raises TypeError by itself for integers outside 64 bits, keys that are not strings, lone
# surrogates and nesting past 254. One stdlib encoder for the process: json.dumps with options
# builds a new one per call.
_ORJSON_OPTIONS = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_SUBCLASS)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# Where orjson may have written NaN or an infinity (as null). A regular expression finds "null" in
# the TransactionEvent frame above in 0.6 us, ``b"null" in text`` in 1.0: the latter's skip table
# takes ',', '.' and '5' for letters of "null" (same low six bits), and JSON is full of commas.
_NULL = re.compile(b"null")
# Ids only have to be unique among one connection's calls; a counter is cheap, and the random
# prefix keeps a late answer meant for an earlier process from matching one of ours.
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def _loads(text: str | bytes) -> Any:
    if not isinstance(text, str):
        encoding = json.detect_encoding(text)
        if encoding != "utf-8":
            # orjson reads UTF-8 alone; the stdlib also read UTF-16, UTF-32 and a UTF-8 BOM.
            text = text.decode(encoding)
    return orjson.loads(text)


_new = object.__new__


def _call(unique_id: str, action: str, payload: Any) -> Call:
    """A Call built without its generated __init__, which sets each field of a frozen dataclass
    through object.__setattr__: twice the cost, on the path of every message read."""
    frame = _new(Call)
    fields = frame.__dict__
    fields["unique_id"] = unique_id
    fields["action"] = action
    fields["payload"] = payload
    return frame


def _result(unique_id: str, payload: Any) -> CallResult:
    """A CallResult built as :func:`_call` builds a Call."""
    frame = _new(CallResult)
    fields = frame.__dict__
    fields["unique_id"] = unique_id
    fields["payload"] = payload
    return frame


def parse(text: str | bytes, version: str) -> Frame:
    """Turn one websocket text message into a frame, or raise FramingError."""
    rpc = error_code(RPC, version)
    try:
        data = _loads(text)
    except ValueError as exc:  # orjson.JSONDecodeError, UnicodeDecodeError
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
        raise FramingError(error_code(MESSAGE_TYPE, version), unique_id,
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
        if message_type == CALL:
            return _call(unique_id, data[2], data[3])
        return Send(unique_id, data[2], data[3])
    if message_type == CALLRESULT:
        if len(data) != 3:
            raise FramingError(rpc, unique_id, "expected [3, id, payload]", message_type)
        return _result(unique_id, data[2])
    if (len(data) != 5 or not isinstance(data[2], str) or not isinstance(data[3], str)
            or not isinstance(data[4], dict)):
        raise FramingError(rpc, unique_id,
                           "expected [type, id, code, description, details]", message_type)
    return CallErrorFrame(unique_id, data[2], data[3], data[4], message_type)


def serialise(frame: Frame) -> str:
    """Compact JSON, UTF-8 kept as is: the smallest text every peer can read.

    Raises ValueError for NaN and infinities and TypeError for what is not JSON,
    as the stdlib encoder does. orjson writes NaN and infinities as ``null``
    instead, so a frame with ``null`` anywhere in its text (rare: the codec
    leaves absent fields out) is written by the stdlib encoder, as is one orjson
    refuses: either way exactly as before orjson. Other frames are orjson's text,
    the stdlib's byte for byte but for floats under 1e-4 in size (``1e-7``, not
    ``1e-07``; ``0.00001``, not ``1e-05``: the same number to any reader) and
    what the stdlib refuses but orjson writes: members of plain enums (as their
    value), UUIDs (as strings) and ``orjson.Fragment``.
    """
    return _serialise_list(frame.to_list())


def call_text(unique_id: str, action: str, payload: Any) -> str:
    """``serialise(Call(unique_id, action, payload))``, without building the frame object."""
    return _serialise_list([CALL, unique_id, action, payload])


def result_text(unique_id: str, payload: Any) -> str:
    """``serialise(CallResult(unique_id, payload))``, without building the frame object."""
    return _serialise_list([CALLRESULT, unique_id, payload])


def _serialise_list(data: list[Any]) -> str:
    try:
        raw = orjson.dumps(data, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return _checked(_ENCODER.encode(data))
    if _NULL.search(raw):
        return _ENCODER.encode(data)
    return raw.decode()


def _checked(text: str) -> str:
    """The stdlib encoder's text, refused if it is not Unicode a peer can read (a lone surrogate,
    which orjson refuses and the stdlib writes): only the fallback needs the look."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a string is not valid Unicode: {exc.reason} at {exc.start}") from None
    return text


def new_message_id() -> str:
    """A fresh id, far shorter than the 36 characters OCPP allows."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER)}"
