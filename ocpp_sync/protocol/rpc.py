"""One connection's OCPP-J RPC state: text in, events out; our calls in, text out.

Every rule of the RPC layer is decided here and nowhere else: one outstanding
CALL per direction (ours wait in a FIFO queue and the next is written only once
the current one is answered, has timed out or the connection is gone), a peer
call that reuses the id of one still being handled, answers that come late or
for no call, malformed frames and the budget of them, the error code each
failure is answered with (looked up in ``ocpp_sync.errors``), and how a
handler's response or exception becomes the answer.

Like h11's connection, the state object does no I/O: the threaded runtime reads
text from the transport, feeds it to :meth:`RpcState.receive`, acts on the event
it gets back and writes the text the state hands it. The runtime also owns the
threads, so it hands in ``guard`` (its lock, or any context manager; none by
default) and the state holds it around every change of its own fields, with the
runtime's ``on_current`` and ``on_idle`` hooks called inside it, so the runtime
can wake its threads without a second lock round per message.
"""
from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from ocpp_sync.errors import (
    FORMAT,
    INTERNAL,
    RPC,
    SECURITY,
    UNKNOWN_ACTION,
    UNSUPPORTED_ACTION,
    CallError,
    ConnectionClosed,
    FramingError,
    NotRegistered,
    OCPPError,
    ProtocolError,
    ValidationError,
    error_code,
    wire_code,
)
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.frames import (
    CALLERROR,
    CALLRESULT,
    CALLRESULTERROR,
    Call,
    CallErrorFrame,
    CallResult,
    Frame,
    Send,
    call_text,
    new_message_id,
    parse,
    result_text,
    serialise,
)
from ocpp_sync.protocol.registration import BOOT, Registration, RegistrationRefused
from ocpp_sync.protocol.versions import message_info, version_module

__all__ = [
    "CS",
    "CSMS",
    "RpcState",
    "OutgoingCall",
    "PeerCall",
    "CallAnswered",
    "FrameRefused",
    "Ignored",
    "Event",
    "MAX_UNANSWERED_PEER_CALLS",
    "MAX_QUEUED_PEER_BYTES",
]

log = logging.getLogger("ocpp_sync.connection")

CS = "cs"      # we are the charge point
CSMS = "csms"  # we are the central system

_MAX_DESCRIPTION = 255
_REMEMBERED_EXPIRED = 64
# OCPP-J allows one unanswered CALL per direction. Real chargers break the rule a little (a
# StatusNotification per connector back to back), so calls queue behind the one in hand up to
# these bounds; past them the peer is closed with 1008 rather than buffered without limit.
MAX_UNANSWERED_PEER_CALLS = 16
MAX_QUEUED_PEER_BYTES = 1024 * 1024

Handler = Callable[[Any], Any]


class OutgoingCall:
    """One of our calls, from the moment it is framed until it is answered or given up.

    The runtime subclasses it to attach its own waiting (a future, a deadline).
    """

    __slots__ = ("unique_id", "action", "text", "response_cls")

    def __init__(self, unique_id: str, action: str, text: str, response_cls: type) -> None:
        self.unique_id = unique_id
        self.action = action
        self.text = text
        self.response_cls = response_cls

    def start(self) -> bool:
        """Whether the call still wants to go on the wire (False: its caller gave it up)."""
        return True


class PeerCall:
    """A call (or a 2.1 SEND, with ``answer`` False) from the peer, read and ready to handle.

    ``size`` is the length of the message it came in, for whoever bounds what it keeps;
    ``received`` when the runtime read it, for whoever times its answer.
    """

    __slots__ = ("unique_id", "action", "handler", "request", "answer", "size", "received")

    def __init__(self, unique_id: str, action: str, handler: Handler, request: Any,
                 answer: bool, size: int = 0) -> None:
        self.unique_id = unique_id
        self.action = action
        self.handler = handler
        self.request = request
        self.answer = answer
        self.size = size
        self.received = 0.0


class CallAnswered:
    """The answer to one of our calls: ``response`` or ``error`` settles ``call``.

    ``write_next`` is the queued call that may now be written; ``reply`` is text
    owed to the peer (a 2.1 CALLRESULTERROR for a response we cannot read).
    """

    __slots__ = ("call", "response", "error", "write_next", "reply")

    def __init__(self, call: OutgoingCall, response: Any, error: OCPPError | None,
                 write_next: OutgoingCall | None, reply: str | None = None) -> None:
        self.call = call
        self.response = response
        self.error = error
        self.write_next = write_next
        self.reply = reply


class FrameRefused:
    """A frame we do not act on: ``reply`` is the CALLERROR to answer with, if any.

    A broken answer to our current call also fails it (``failed`` with ``error``,
    and ``write_next`` as for an answer). ``close`` is a close code when the
    peer has spent its budget (of malformed frames, or of unanswered calls).
    ``action`` is the action of a readable call refused, else None; ``malformed``
    says the frame was no OCPP-J frame at all.
    """

    __slots__ = ("reply", "failed", "error", "write_next", "close", "reason", "action", "malformed")

    def __init__(self, reply: str | None, *, failed: OutgoingCall | None = None,
                 error: OCPPError | None = None, write_next: OutgoingCall | None = None,
                 close: int | None = None, reason: str = "", action: str | None = None,
                 malformed: bool = False) -> None:
        self.reply = reply
        self.failed = failed
        self.error = error
        self.write_next = write_next
        self.close = close
        self.reason = reason
        self.action = action
        self.malformed = malformed


class Ignored:
    """Nothing to do: a late answer, one for no call, or the peer's error about our answer."""

    __slots__ = ()


IGNORED = Ignored()
Event = PeerCall | CallAnswered | FrameRefused | Ignored


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DESCRIPTION else text[:_MAX_DESCRIPTION - 3] + "..."


def _no_handler(request_cls: type) -> None:
    return None


class RpcState:
    """The RPC rules of one connection for one side (``CS`` or ``CSMS``), without I/O.

    ``find_handler(request_cls)`` returns the callable that answers that request
    class, or None. ``max_bad_messages`` malformed frames in a row (None: no
    limit) make :meth:`receive` ask for the connection to be closed with 1008.
    ``registration`` (a CSMS's, for the station on the other end; None: no
    checks) decides which calls each side may make before the station is Accepted.
    """

    def __init__(self, version: str, role: str, find_handler: Callable[[type], Handler | None], *,
                 name: str = "", lenient: bool = False, max_bad_messages: int | None = None,
                 guard: ContextManager[Any] | None = None,
                 on_current: Callable[[OutgoingCall], None] | None = None,
                 on_idle: Callable[[], None] | None = None,
                 registration: Registration | None = None) -> None:
        if max_bad_messages is not None and max_bad_messages < 1:
            raise ValueError("max_bad_messages must be at least 1 (or None)")
        if role not in (CS, CSMS):
            raise ValueError(f"role must be {CS!r} or {CSMS!r}, not {role!r}")
        self.version = version
        self.name = name
        self.lenient = lenient
        self._module = version_module(version)
        if role == CS:
            self._incoming, self._outgoing = self._module.CSMS_TO_CS, self._module.CS_TO_CSMS
        else:
            self._incoming, self._outgoing = self._module.CS_TO_CSMS, self._module.CSMS_TO_CS
        self._find_handler = find_handler
        self._max_bad_messages = max_bad_messages
        self._guard: ContextManager[Any] = guard if guard is not None else contextlib.nullcontext()
        self._on_current = on_current
        self._on_idle = on_idle
        self.registration = registration if role == CSMS else None
        self._bad_frames = 0   # malformed frames in a row; only the reading thread counts them
        # Under the guard:
        self.current: OutgoingCall | None = None
        self._queue: collections.deque[OutgoingCall] = collections.deque()
        self._expired: collections.deque[str] = collections.deque(maxlen=_REMEMBERED_EXPIRED)
        self._handling: dict[str, int] = {}   # the peer's unanswered calls: id -> text length
        self._handling_bytes = 0
        self.closing = False

    # -- our calls ----------------------------------------------------------------------

    def outgoing_action(self, message: Any) -> str:
        """The action of a request this side may send on this connection, or why not."""
        try:
            info = message_info(message)
        except (TypeError, KeyError, AttributeError, ValueError):
            raise TypeError(f"not an OCPP message: {message!r}") from None
        if info.version != self.version:
            raise ValueError(f"{type(message).__name__} is an OCPP {info.version} message, "
                             f"this connection speaks {self.version}")
        if not info.is_request:
            raise ValueError(f"{type(message).__name__} is a response; send requests")
        if info.action not in self._outgoing:
            raise ValueError(f"{info.action} is not sent in this direction in OCPP {self.version}")
        return info.action

    def frame_call(self, action: str, payload: dict[str, Any]) -> tuple[str, str, type | None]:
        """A new id, the frame's text and the response class (None: a 2.1 SEND, never answered).

        NotRegistered if the station's registration forbids the call now.
        """
        registration = self.registration
        if registration is not None and not registration.open:
            try:
                with self._guard:
                    registration.check_csms_call(action, payload)
            except RegistrationRefused as exc:
                raise NotRegistered(str(exc)) from None
        response_cls = self._module.RESPONSES.get(action)
        unique_id = new_message_id()
        try:
            text = call_text(unique_id, action, payload) if response_cls is not None else \
                serialise(Send(unique_id, action, payload))
            return unique_id, text, response_cls
        except ValueError as exc:   # a lone surrogate: a ValidationError before anything is sent
            raise ValidationError(error_code(FORMAT, self.version), "", f"{action}: {exc}") from None

    def check_open(self) -> None:
        if self.closing:
            raise ConnectionClosed("the connection is closed")

    def submit(self, call: OutgoingCall) -> OutgoingCall | None:
        """Queue ``call``; returns the call to write now (it, when nothing else is on the wire)."""
        with self._guard:
            self.check_open()
            self._queue.append(call)
            return self._next_locked() if self.current is None else None

    def expire(self, call: OutgoingCall) -> OutgoingCall | None:
        """``call`` timed out: forget it (its late answer is dropped); returns the call to write next."""
        with self._guard:
            if self.current is call:
                self.current = None
                self._expired.append(call.unique_id)
                return self._next_locked()
            if call in self._queue:
                self._queue.remove(call)
            return None

    def fail_all(self) -> list[OutgoingCall]:
        """The connection is going: take every call queued or on the wire, to fail them."""
        with self._guard:
            self.closing = True
            failed = list(self._queue)
            self._queue.clear()
            if self.current is not None:
                failed.append(self.current)
                self.current = None
            if self._on_idle is not None:
                self._on_idle()
        return failed

    def detach(self) -> None:
        """Forget the callables given at construction, once the connection is over.

        They point back at the objects that own this state: kept, they would
        make a cycle that only the cyclic garbage collector frees.
        """
        with self._guard:
            self._find_handler = _no_handler
            self._on_current = None
            self._on_idle = None

    def has_calls_locked(self) -> bool:
        """A call is queued or on the wire (with the guard held)."""
        return self.current is not None or bool(self._queue)

    def _next_locked(self) -> OutgoingCall | None:
        """Make the first live queued call current; the caller writes it after unlocking."""
        while self._queue:
            call = self._queue.popleft()
            if call.start():
                self.current = call
                if self._on_current is not None:
                    self._on_current(call)
                return call
        if self._on_idle is not None:
            self._on_idle()
        return None

    def _take_current(self, unique_id: str) -> tuple[OutgoingCall | None, OutgoingCall | None]:
        """Detach the current call if it has this id; also return the call to write next."""
        with self._guard:
            call = self.current
            if call is None or call.unique_id != unique_id:
                late = unique_id in self._expired
                call = None
            else:
                self.current = None
            write_next = self._next_locked() if call is not None else None
        if call is None:
            if late:
                log.warning("%s: dropped a late response to %s (its call had timed out)",
                            self.name, unique_id)
            else:
                log.warning("%s: dropped a response to %s, which no call is waiting for",
                            self.name, unique_id)
        return call, write_next

    # -- text in ------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> Event:
        """What one text message from the peer means."""
        try:
            frame = parse(text, self.version)
        except FramingError as exc:
            return self._bad_frame(exc)
        self._bad_frames = 0
        if isinstance(frame, CallResult):
            return self._on_result(frame)
        if isinstance(frame, Call):
            return self._on_call(frame, len(text))
        if isinstance(frame, Send):
            found = self._handler_and_request(frame.unique_id, frame.action, frame.payload)
            if isinstance(found, PeerCall):
                found.answer = False
                return found
            return IGNORED   # a SEND is never answered, not even with an error
        if frame.message_type == CALLRESULTERROR:
            log.warning("%s: the peer rejected our response to %s: %s %s", self.name,
                        frame.unique_id, frame.code, frame.description)
            return IGNORED
        call, write_next = self._take_current(frame.unique_id)
        if call is None:
            return IGNORED
        return CallAnswered(call, None, CallError(frame.code, frame.description, frame.details),
                            write_next)

    def bad_message(self, description: str) -> FrameRefused:
        """A message that is no frame at all (a binary one): not answered, but it counts."""
        log.warning("%s: bad message from the peer: %s", self.name, description)
        return FrameRefused(None, close=self._count_bad_frame(), reason="too many malformed messages",
                            malformed=True)

    def _bad_frame(self, exc: FramingError) -> FrameRefused:
        log.warning("%s: bad frame from the peer: %s", self.name, exc.description)
        failed = write_next = None
        error = None
        if exc.message_type in (CALLRESULT, CALLERROR, CALLRESULTERROR):
            error = ProtocolError(exc.description)
            failed, write_next = self._take_current_quietly(exc.unique_id)
        close = self._count_bad_frame()
        if exc.message_type in (CALLERROR, CALLRESULTERROR):
            # Never answer an error with an error: two peers could trade them forever.
            return FrameRefused(None, failed=failed, error=error, write_next=write_next,
                                close=close, reason="too many malformed messages", malformed=True)
        message_type = CALLRESULTERROR if exc.message_type == CALLRESULT and self.version == "2.1" \
            else CALLERROR
        reply = self._serialise_answer(CallErrorFrame(exc.unique_id, exc.code, exc.description, {},
                                                      message_type))
        return FrameRefused(reply, failed=failed, error=error, write_next=write_next, close=close,
                            reason="too many malformed messages", malformed=True)

    def _take_current_quietly(self, unique_id: str) -> tuple[OutgoingCall | None, OutgoingCall | None]:
        with self._guard:
            if self.current is None or self.current.unique_id != unique_id:
                return None, None
        return self._take_current(unique_id)

    def _count_bad_frame(self) -> int | None:
        """The close code once the peer has spent its budget of malformed frames, else None."""
        self._bad_frames += 1
        if self._max_bad_messages is None or self._bad_frames < self._max_bad_messages:
            return None
        log.warning("%s: %d malformed messages in a row: closing the connection", self.name,
                    self._bad_frames)
        return 1008

    @property
    def bad_frames(self) -> int:
        return self._bad_frames

    def _on_result(self, frame: CallResult) -> Event:
        call, write_next = self._take_current(frame.unique_id)
        if call is None:
            return IGNORED
        try:
            response: Any = from_payload(call.response_cls, frame.payload, lenient=self.lenient)
        except (ValidationError, RecursionError) as exc:
            # RecursionError: free-form data nested deeper than the codec can walk; the caller
            # learns it now rather than by a timeout.
            failure: OCPPError = exc if isinstance(exc, ValidationError) else ProtocolError(
                f"the {call.action} response is nested too deep to read",
                code=error_code(FORMAT, self.version))
            log.warning("%s: invalid %s response: %s", self.name, call.action, failure)
            reply = None
            if self.version == "2.1":
                reply = self._serialise_answer(CallErrorFrame(
                    frame.unique_id, failure.code, _short(str(failure)), {}, CALLRESULTERROR))
            return CallAnswered(call, None, failure, write_next, reply)
        return CallAnswered(call, response, None, write_next)

    def _on_call(self, frame: Call, size: int) -> Event:
        unique_id = frame.unique_id
        with self._guard:
            # Checked and claimed in one guarded step: this runs for every call the peer makes.
            duplicate = unique_id in self._handling
            over = not duplicate and bool(self._handling) and (
                len(self._handling) >= MAX_UNANSWERED_PEER_CALLS
                or self._handling_bytes + size > MAX_QUEUED_PEER_BYTES)
            if not duplicate and not over:
                self._handling[unique_id] = size
                self._handling_bytes += size
        if duplicate:
            log.warning("%s: a call reused the id %s of one still being handled", self.name, unique_id)
            return FrameRefused(self._serialise_answer(CallErrorFrame(
                unique_id, error_code(RPC, self.version), "a call with this id is still being handled")),
                action=frame.action)
        if over:
            log.warning("%s: the peer sent %s while %d of its calls are unanswered: closing the "
                        "connection", self.name, frame.action, len(self._handling))
            return FrameRefused(None, close=1008, reason="too many unanswered calls")
        found = self._handler_and_request(unique_id, frame.action, frame.payload)
        if isinstance(found, str):
            self._release(unique_id)
            return FrameRefused(found, action=frame.action)
        return found

    def _handler_and_request(self, unique_id: str, action: str, payload: Any) -> PeerCall | str:
        """The handler and the request, or the CALLERROR text that says why not."""
        try:
            if action not in self._module.REQUESTS:
                raise OCPPError(f"{action} is not an OCPP {self.version} action",
                                code=error_code(UNKNOWN_ACTION, self.version))
            if action not in self._incoming:
                raise OCPPError(f"{action} is not sent in this direction",
                                code=error_code(UNSUPPORTED_ACTION, self.version))
            registration = self.registration
            if registration is not None and not registration.open:
                try:
                    with self._guard:
                        registration.check_station_call(action, payload)
                except RegistrationRefused as exc:
                    raise OCPPError(str(exc), code=error_code(SECURITY, self.version)) from None
            cls = self._module.REQUESTS[action]
            handler = self._find_handler(cls)
            if handler is None:
                raise OCPPError(f"no handler for {action}",
                                code=error_code(UNSUPPORTED_ACTION, self.version))
            return PeerCall(unique_id, action, handler, from_payload(cls, payload, lenient=self.lenient),
                            True)
        except OCPPError as exc:
            log.warning("%s: refused %s %s: %s %s", self.name, action, unique_id, exc.code,
                        exc.description)
            return self._serialise_answer(CallErrorFrame(unique_id, exc.code, _short(exc.description)))
        except RecursionError:
            # JSON nests up to 1024 deep; the codec's walk of free-form data (DataTransfer's
            # data) runs out of stack before that. The peer's doing, not a bug of ours.
            log.warning("%s: refused %s %s: nested too deep to read", self.name, action, unique_id)
            return self._serialise_answer(CallErrorFrame(unique_id, error_code(FORMAT, self.version),
                                                         "nested too deep to read"))
        except Exception:
            log.exception("%s: could not read %s %s", self.name, action, unique_id)
            return self._serialise_answer(CallErrorFrame(unique_id, error_code(INTERNAL, self.version),
                                                         "could not read the request"))

    # -- answers out --------------------------------------------------------------------

    def answer(self, call: PeerCall, response: Any) -> str:
        """The text that answers ``call`` with a handler's ``response``."""
        self._release(call.unique_id)
        expected = self._module.RESPONSES[call.action]
        if not isinstance(response, expected):
            log.error("%s: the %s handler returned %r, not a %s", self.name, call.action,
                      type(response).__name__, expected.__name__)
            return self._internal_error(call, "returned an invalid response")
        try:
            payload = to_payload(response)
        except ValidationError as exc:
            log.error("%s: the %s handler returned an invalid response: %s", self.name, call.action, exc)
            return self._internal_error(call, "returned an invalid response")
        try:
            text = result_text(call.unique_id, payload)
        except (TypeError, ValueError):   # the same failure again, there logged and answered
            text = self._serialise_answer(CallResult(call.unique_id, payload))
        if call.action == BOOT and self.registration is not None:
            with self._guard:
                self.registration.booted(payload["status"])
        return text

    @staticmethod
    def is_result(text: str) -> bool:
        """Whether an answer this state wrote is a CALLRESULT (not a CALLERROR): its compact
        JSON starts with the message type."""
        return text.startswith(f"[{CALLRESULT},")

    def answer_error(self, call: PeerCall, exc: BaseException) -> str:
        """The text that answers ``call`` whose handler raised ``exc``."""
        self._release(call.unique_id)
        if not isinstance(exc, OCPPError):
            return self._internal_error(call, "failed")
        details = exc.details if isinstance(exc.details, dict) else {}
        return self._serialise_answer(CallErrorFrame(call.unique_id, wire_code(exc.code, self.version),
                                                     _short(exc.description), details))

    def release(self, call: PeerCall) -> None:
        """``call`` will not be answered (the connection is going)."""
        self._release(call.unique_id)

    def _release(self, unique_id: str) -> None:
        with self._guard:
            size = self._handling.pop(unique_id, None)
            if size is not None:
                self._handling_bytes -= size

    def _internal_error(self, call: PeerCall, what: str) -> str:
        return self._serialise_answer(CallErrorFrame(call.unique_id, error_code(INTERNAL, self.version),
                                                     f"the {call.action} handler {what}"))

    def _serialise_answer(self, frame: Frame) -> str:
        """An answer's text; error details come from handlers unchecked, yet the peer gets an answer."""
        try:
            return serialise(frame)
        except (TypeError, ValueError) as exc:
            log.error("%s: could not serialise the answer to %s: %s", self.name, frame.unique_id, exc)
            if isinstance(frame, CallErrorFrame):
                frame = CallErrorFrame(frame.unique_id, frame.code, frame.description, {},
                                       frame.message_type)
            else:
                frame = CallErrorFrame(frame.unique_id, error_code(INTERNAL, self.version),
                                       "the answer was not JSON")
            return serialise(frame)
