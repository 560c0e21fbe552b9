"""Per-connection message history and blocking ``expect``, for test benches.

The connection hands every frame it reads or writes to :meth:`History.frame`
as text, which costs an append to a bounded deque; frames are parsed only when
someone reads the history, so a busy CSMS pays almost nothing for it.

:meth:`History.expect` waits for requests the handlers have answered. Each
request is returned by ``expect`` at most once, and one that arrived before
``expect`` was called still counts: a test that looks for the boot after
``wait_for_station`` returned must not miss a boot that was quicker than it.
"""
from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from typing import Any, TypeVar

from ocpp_sync.errors import ConnectionClosed

__all__ = ["History", "HistoryEntry", "DEFAULT_HISTORY_SIZE"]

#: Frames kept per connection unless told otherwise.
DEFAULT_HISTORY_SIZE = 1000

_TYPES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR", 5: "CALLRESULTERROR", 6: "SEND"}
_DIRECTIONS = {">": "out", "<": "in"}

R = TypeVar("R")


@dataclass(frozen=True)
class HistoryEntry:
    """One frame as it went over the wire.

    ``latency`` is set on answers: the seconds since the call it answers was
    written (our calls) or read (the peer's calls, so the handler's time).
    ``action`` of an answer is the action of its call, when that is still in
    the history. ``type`` is "invalid" for a frame that is not OCPP-J.
    """

    time: datetime
    direction: str
    type: str
    action: str | None
    message_id: str | None
    payload: Any
    latency: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the time as an ISO 8601 string."""
        return {"time": self.time.isoformat(), "direction": self.direction, "type": self.type,
                "action": self.action, "message_id": self.message_id, "payload": self.payload,
                "latency": self.latency}


# A frame as kept: (wall clock, monotonic clock, direction, text). A plain tuple, because
# it is built twice per call on every connection and read only when someone asks.
_Raw = tuple[float, float, str, str]


class History:
    """The last ``maxlen`` frames of a connection and the requests its handlers answered.

    Thread-safe; payloads are kept as they were on the wire (secrets included),
    so mind where an export goes.
    """

    def __init__(self, maxlen: int | None = DEFAULT_HISTORY_SIZE) -> None:
        if maxlen is not None and maxlen < 1:
            raise ValueError("maxlen must be at least 1 (or None for no bound)")
        self.maxlen = maxlen
        # _changed guards _requests, _closed and _waiting; _frames only takes appends (see frame()).
        self._changed = threading.Condition()
        self._waiting = 0  # expect() calls waiting: handled() wakes them only if there are any
        self._frames: collections.deque[_Raw] = collections.deque(maxlen=maxlen)
        self._requests: collections.deque[Any] = collections.deque(maxlen=maxlen)
        self._closed = False

    # -- fed by the connection ------------------------------------------------

    def frame(self, direction: str, text: str) -> None:
        """A frame was written (">") or read ("<")."""
        # No lock: deque.append is atomic, and list(deque) in entries() runs without
        # releasing the GIL, so it never sees an append half done. Twice per call, it adds up.
        self._frames.append((time.time(), time.monotonic(), direction, text))

    def handled(self, request: Any) -> None:
        """The handler has answered ``request``: wake ``expect``."""
        with self._changed:
            self._requests.append(request)
            if self._waiting:
                self._changed.notify_all()

    def close(self) -> None:
        """No request will come any more: waiting ``expect`` calls fail at once."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    # -- reading ----------------------------------------------------------------

    def entries(self) -> list[HistoryEntry]:
        """The frames kept, oldest first."""
        with self._changed:
            frames = list(self._frames)
        calls: dict[tuple[str, str], tuple[str | None, float]] = {}
        entries = []
        for raw in frames:
            entry, call_key = _parse(raw, calls)
            if call_key is not None:
                calls[call_key] = (entry.action, raw[1])
            entries.append(entry)
        return entries

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._changed:
            return len(self._frames)

    def to_list(self) -> list[dict[str, Any]]:
        """The frames as JSON-ready dicts, oldest first."""
        return [entry.as_dict() for entry in self.entries()]

    def to_jsonl(self, path: str | PathLike[str] | None = None) -> str:
        """The frames as JSON lines; also written to ``path`` when given."""
        text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in self.to_list())
        if path is not None:
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
        return text

    def clear(self) -> None:
        """Forget every frame and every request not yet returned by ``expect``."""
        with self._changed:
            self._frames.clear()
            self._requests.clear()

    def expect(self, request_cls: type[R], timeout: float | None = 30.0,
               where: Callable[[R], bool] | None = None) -> R:
        """The oldest answered ``request_cls`` request not yet returned, for which ``where`` holds.

        Blocks until one is answered; TimeoutError after ``timeout`` seconds,
        ConnectionClosed once the connection is over. Never call it from a
        handler of the same connection: the request it waits for would be
        handled by the very thread that waits.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._take_locked(request_cls, where)
                if found is not None:
                    return found[0]
                if self._closed:
                    raise ConnectionClosed(
                        f"the connection ended before a matching {request_cls.__name__} came")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(self._timeout_message(request_cls, timeout))
                self._waiting += 1
                try:
                    self._changed.wait(left)
                finally:
                    self._waiting -= 1

    def _take_locked(self, request_cls: type[R],
                     where: Callable[[R], bool] | None) -> tuple[R] | None:
        for index, request in enumerate(self._requests):
            if isinstance(request, request_cls) and (where is None or where(request)):
                del self._requests[index]
                return (request,)
        return None

    def _timeout_message(self, request_cls: type, timeout: float | None) -> str:
        others = sum(isinstance(r, request_cls) for r in self._requests)
        text = f"no matching {request_cls.__name__} within {timeout:g} s"
        if others:
            text += f" ({others} unmatched {request_cls.__name__} waiting)"
        return text

    def __repr__(self) -> str:
        return f"<History {len(self)} frames, maxlen={self.maxlen}>"


def _parse(raw: _Raw, calls: dict[tuple[str, str], tuple[str | None, float]],
           ) -> tuple[HistoryEntry, tuple[str, str] | None]:
    """One entry; the key to remember it by if it is a call (direction, id)."""
    wall, mono, direction, text = raw
    direction = _DIRECTIONS.get(direction, direction)
    when = datetime.fromtimestamp(wall, timezone.utc)
    try:
        frame = json.loads(text)
        kind = _TYPES[frame[0]]
        message_id = frame[1]
        if not isinstance(message_id, str):
            raise TypeError
    except (ValueError, TypeError, KeyError, IndexError):
        return HistoryEntry(when, direction, "invalid", None, None, text, None), None
    if kind in ("CALL", "SEND"):
        action = frame[2] if len(frame) > 2 else None
        payload = frame[3] if len(frame) > 3 else None
        entry = HistoryEntry(when, direction, kind, action, message_id, payload, None)
        return entry, ((direction, message_id) if kind == "CALL" else None)
    if kind == "CALLRESULT":
        payload = frame[2] if len(frame) > 2 else None
    else:
        payload = {"code": _item(frame, 2), "description": _item(frame, 3),
                   "details": _item(frame, 4)}
    other = "in" if direction == "out" else "out"
    call = calls.pop((other, message_id), None)
    action, latency = (None, None) if call is None else (call[0], mono - call[1])
    return HistoryEntry(when, direction, kind, action, message_id, payload, latency), None


def _item(frame: list[Any], index: int) -> Any:
    return frame[index] if len(frame) > index else None
