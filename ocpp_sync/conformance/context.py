"""What a case plays with: steps with a deadline, calls and expected requests as frames, checks.

A case sees the peer under test only through its :class:`Context`, so the same
case code runs whichever side the kit plays: the side (a station towards a CSMS
under test, or the CSMS for a station under test) is a :class:`Side`.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NoReturn, Protocol

from ocpp_sync.conformance.case import CSMS_ROLE, Case
from ocpp_sync.conformance.check import MISSING, at, first_mismatch, matches
from ocpp_sync.conformance.config import Config
from ocpp_sync.conformance.prompts import Prompt
from ocpp_sync.errors import CallError, CallTimeout, CaseFailed, ValidationError
from ocpp_sync.protocol.frames import new_message_id
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.runtime.history import History, HistoryEntry

__all__ = ["Context", "Frame", "Exchange", "Peer", "Side", "Answer"]

# How long expect_call(or_reconnect=True) looks at one connection before looking for a new one.
_RECONNECT_LOOK = 0.2

#: ``answer(request_payload) -> response_payload``, both as on the wire.
Answer = Callable[[dict[str, Any]], dict[str, Any]]


class Peer(Protocol):
    """The kit's end of the connection to the peer under test (a ChargePoint or a Station)."""

    @property
    def history(self) -> History: ...

    def call(self, action: str, payload: Mapping[str, Any],
             timeout: float | None = None) -> dict[str, Any] | None: ...

    def send_raw(self, text: str) -> None: ...


class Side(Protocol):
    """The role the kit plays for one case."""

    def peer(self, timeout: float) -> Peer:
        """The connection to the peer under test, opened or awaited within ``timeout``."""

    def reconnected(self, timeout: float) -> Peer:
        """A new connection of the peer under test (it rebooted, say), awaited within ``timeout``."""

    def newer(self) -> Peer | None:
        """A connection of the peer under test newer than the last one returned, if one is open."""

    def answer(self, action: str, answer: Answer) -> None:
        """Answer the peer's ``action`` calls with ``answer`` from now on."""

    def histories(self) -> list[History]:
        """The histories of every connection of this case."""


@dataclass(frozen=True)
class Frame:
    """One frame of the case as the kit saw it; ``direction`` says who sent it."""

    type: str
    action: str | None
    message_id: str | None
    direction: str
    payload: Any

    def ref(self) -> dict[str, Any]:
        """What a verdict names the frame by."""
        return {"type": self.type, "action": self.action, "message_id": self.message_id,
                "direction": self.direction}


@dataclass(frozen=True)
class Exchange:
    """A call the kit made and the answer it got."""

    request: Frame
    response: Frame


class Context:
    """Everything a case's ``play`` function uses.

    Args:
        case: The case being played.
        version: The OCPP version of the run.
        config: The run's configuration.
        prompt: ``prompt(key, text)`` for what a person must do.
        side: The role the kit plays.
        station_id: The id of the station (the kit's, or the one under test).
    """

    def __init__(self, case: Case, version: str, config: Config, prompt: Prompt, side: Side,
                 station_id: str) -> None:
        self.case = case
        self.station_id = station_id
        self.version = version
        self.config = config
        self.side = side
        self.m = version_module(version)
        self.under_test = "CSMS" if case.role == CSMS_ROLE else "station"
        self.started = datetime.now(timezone.utc)
        self.current_step: str | None = None
        self._prompt = prompt
        self._deadline = time.monotonic() + config.step_timeout
        # The frames a wait has returned, by direction, id and time: a reused id is another frame.
        self._consumed: set[tuple[str, str | None, datetime]] = set()
        self._peer: Peer | None = None

    # -- steps ------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run one of the case's declared steps; its waits share ``config.step_timeout``."""
        if name not in self.case.steps:
            raise ValueError(f"{self.case.id} declares no step {name!r}")
        self.current_step = name
        self._deadline = time.monotonic() + self.config.step_timeout
        yield

    def left(self) -> float:
        """Seconds left in the current step (at least a little, so a wait can still look)."""
        return max(0.05, self._deadline - time.monotonic())

    def prompt(self, key: str, text: str) -> None:
        """Ask for an action (see ocpp_sync.conformance.prompts); the step's clock restarts after."""
        self._prompt(key, text)
        self._deadline = time.monotonic() + self.config.step_timeout

    def pause(self, seconds: float) -> None:
        """Wait as the protocol says (the interval of a Pending boot answer); nothing ends it early."""
        threading.Event().wait(seconds)
        self._deadline = time.monotonic() + self.config.step_timeout

    @property
    def peer(self) -> Peer:
        if self._peer is None:
            self._peer = self.side.peer(self.left())
        return self._peer

    def reconnected(self) -> Peer:
        """Wait for the peer under test to connect again (after a reboot)."""
        self._peer = self.side.reconnected(self.left())
        return self._peer

    # -- frames -----------------------------------------------------------------------

    def _frame(self, entry: HistoryEntry) -> Frame:
        who = f"the {self.under_test} under test"
        direction = f"from {who}" if entry.direction == "in" else f"to {who}"
        return Frame(entry.type, entry.action, entry.message_id, direction, entry.payload)

    def _find(self, where: Callable[[HistoryEntry], bool], timeout: float) -> Frame:
        entry = self.peer.history.wait_for_frame(
            lambda e: e.time >= self.started
            and (e.direction, e.message_id, e.time) not in self._consumed and where(e), timeout)
        self._consumed.add((entry.direction, entry.message_id, entry.time))
        return self._frame(entry)

    def _answer_to(self, message_id: str, timeout: float) -> Frame:
        return self._find(lambda e: e.direction == "in" and e.message_id == message_id
                          and e.type in ("CALLRESULT", "CALLERROR"), timeout)

    def _sent(self, action: str) -> Frame:
        return self._find(lambda e: e.direction == "out" and e.type == "CALL"
                          and e.action == action, 0.05)

    def frames(self) -> list[dict[str, Any]]:
        """The frames of this case so far, JSON-ready, every connection's, oldest first."""
        entries = [e for history in self.side.histories() for e in history.entries()
                   if e.time >= self.started]
        entries.sort(key=lambda e: e.time)
        return [dict(self._frame(e).ref(), time=e.time.isoformat(), payload=e.payload)
                for e in entries]

    # -- talking ----------------------------------------------------------------------

    def call(self, action: str, payload: Mapping[str, Any]) -> Exchange:
        """Make a (valid) call; a CALLERROR, no answer or an answer that breaks the schema fails."""
        peer = self.peer
        try:
            peer.call(action, payload, self.left())
        except CallError as exc:
            request = self._sent(action)
            answer = self._answer_to(str(request.message_id), 0.05)
            self.fail(f"{action}: the {self.under_test} answered a CALLERROR {exc.code}",
                      frame=answer, field="$", expected="a CALLRESULT", got=exc.code)
        except ValidationError as exc:
            request = self._sent(action)
            answer = self._answer_to(str(request.message_id), 0.05)
            path = "$" + ("" if not exc.path else ("" if exc.path.startswith("[") else ".") + exc.path)
            self.fail(f"{action}: the answer breaks the schema: {exc.message}", frame=answer,
                      field=path, expected="valid per the schema", got=at(answer.payload, path))
        except CallTimeout:
            request = self._sent(action)
            self.fail(f"{action}: no answer within {self.config.step_timeout:g} s", frame=request)
        request = self._sent(action)
        return Exchange(request, self._answer_to(str(request.message_id), self.left()))

    def unchecked_call(self, action: str, payload: Any, message_id: str | None = None) -> Frame:
        """Negative injection: send a CALL exactly as given (no validation; ``message_id``
        may reuse an old id) and return the answer frame, CALLRESULT or CALLERROR."""
        unique_id = message_id or new_message_id()
        self.peer.send_raw(json.dumps([2, unique_id, action, payload], separators=(",", ":")))
        sent = self._find(lambda e: e.direction == "out" and e.type == "CALL"
                          and e.message_id == unique_id, 0.05)
        return self._awaited(unique_id, sent)

    def raw(self, text: str, answer_id: str | None) -> Frame:
        """Negative injection: write ``text`` as it is; the answer with ``answer_id``
        (None: none is awaited, and this returns the frame sent)."""
        self.peer.send_raw(text)
        sent = self._frame([e for e in self.peer.history.entries() if e.direction == "out"][-1])
        return sent if answer_id is None else self._awaited(answer_id, sent)

    def _awaited(self, answer_id: str, sent: Frame) -> Frame:
        try:
            return self._answer_to(answer_id, self.left())
        except TimeoutError:
            self.fail(f"no answer with the id {answer_id!r} within {self.config.step_timeout:g} s",
                      frame=sent)

    def expect_call(self, action: str, where: Callable[[Any], bool] | None = None, *,
                    or_reconnect: bool = False) -> Frame:
        """The next ``action`` CALL from the peer under test (``where(payload)`` holding).

        ``or_reconnect``: it may come on a new connection too (a station that resets
        may reboot with or without closing the old one).
        """
        def wanted(e: HistoryEntry) -> bool:
            return e.direction == "in" and e.type == "CALL" and e.action == action \
                and (where is None or where(e.payload))
        deadline = self._deadline
        while True:
            try:
                return self._find(wanted, _RECONNECT_LOOK if or_reconnect else self.left())
            except TimeoutError:
                if not or_reconnect or time.monotonic() >= deadline:
                    self.fail(f"no {action} from the {self.under_test} within "
                              f"{self.config.step_timeout:g} s", expected=f"a {action} CALL")
            self._peer = self.side.newer() or self._peer

    def seen(self, action: str) -> None:
        """Count every ``action`` CALL of the peer so far as looked at: the next
        :meth:`expect_call` for it matches only a later one."""
        for entry in self.peer.history.entries():
            if entry.direction == "in" and entry.type == "CALL" and entry.action == action:
                self._consumed.add((entry.direction, entry.message_id, entry.time))

    def reply_to(self, request: Frame) -> Frame:
        """The kit's own answer to a request of the peer (the transaction id it gave, say)."""
        try:
            return self._find(lambda e: e.direction == "out" and e.message_id == request.message_id
                              and e.type in ("CALLRESULT", "CALLERROR"), self.left())
        except TimeoutError:
            self.fail(f"the kit did not answer {request.action} within "
                      f"{self.config.step_timeout:g} s", frame=request)

    def answer(self, action: str, answer: Answer | Mapping[str, Any]) -> None:
        """Answer the peer's ``action`` calls with a fixed payload or ``answer(payload)``."""
        if isinstance(answer, Mapping):
            fixed = dict(answer)
            self.side.answer(action, lambda payload: fixed)
        else:
            self.side.answer(action, answer)

    # -- verdicts ---------------------------------------------------------------------

    def check(self, frame: Frame, *expectations: tuple[str, Any], error: bool = False) -> None:
        """Each ``(json_path, expected)`` holds in the frame's payload (expected: a value or a Matcher).

        A CALLERROR fails unless ``error`` (its payload is then ``code``, ``description``, ``details``).
        """
        if frame.type == "CALLERROR" and not error:
            self.fail(f"{frame.action}: the {self.under_test} answered a CALLERROR",
                      frame=frame, field="$", expected="a CALLRESULT", got=frame.payload)
        mismatch = first_mismatch(frame.payload, expectations)
        if mismatch is not None:
            path, expected, got = mismatch
            self.fail(f"{frame.action}: {path} is not as expected", frame=frame, field=path,
                      expected=expected, got=got)

    def find(self, frame: Frame, list_path: str, *expectations: tuple[str, Any]) -> int:
        """The index of the item of the list at ``list_path`` for which every ``(path, expected)``
        holds, paths relative to the item (``$.component.name``): for lists in any order."""
        items = at(frame.payload, list_path)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if all(matches(expected, at(item, path)) for path, expected in expectations):
                    return index
        shown = ", ".join(f"{path[1:]} {expected!r}" for path, expected in expectations)
        self.fail(f"{frame.action}: no item of {list_path} with {shown}", frame=frame,
                  field=list_path, expected=f"an item with {shown}",
                  got=items if items is not MISSING else MISSING)

    def fail(self, message: str, *, frame: Frame | None = None, field: str | None = None,
             expected: Any = None, got: Any = None) -> NoReturn:
        """Fail the case at the current step (raises CaseFailed)."""
        raise CaseFailed(message, frame=None if frame is None else frame.ref(), field=field,
                         expected=expected, got=got)
