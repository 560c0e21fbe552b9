"""Per-connection message history and blocking ``expect``, for test benches.

The connection hands every frame it reads or writes to :meth:`History.frame`
as text, which costs an append to a deque under a lock; frames are parsed only
when someone reads the history, so a busy CSMS pays almost nothing for it.

The history is bounded twice: by frames (``maxlen``) and by the characters of
the texts kept (``max_bytes``); the oldest frames go first. A frame larger than
``max_bytes`` on its own is kept as a placeholder (its type, id and action, read
from its first characters, and its size): a cut text would read as a malformed
frame from the peer, and the placeholder still pairs an answer with its call.

:meth:`History.expect` waits for requests the handlers have answered. Each
request is returned by ``expect`` at most once, and one that arrived before
``expect`` was called still counts: a test that looks for the boot after
``wait_for_station`` returned must not miss a boot that was quicker than it.
"""
from __future__ import annotations

import collections
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from typing import Any, TypeVar

from ocpp_sync.errors import ConnectionClosed

__all__ = ["History", "HistoryEntry", "DEFAULT_HISTORY_SIZE", "DEFAULT_HISTORY_BYTES"]

#: Frames kept per connection unless told otherwise.
DEFAULT_HISTORY_SIZE = 1000
#: Characters of frame text kept per connection unless told otherwise: about as many
#: ordinary messages (~1 KB) as DEFAULT_HISTORY_SIZE, so big messages do not multiply it.
DEFAULT_HISTORY_BYTES = 1 << 20

# Characters of a too large frame kept to name it: the type, id and action come first.
_HEAD = 200
_HEADER = re.compile(r'\s*\[\s*(\d)\s*,\s*"((?:[^"\\]|\\.)*)"(?:\s*,\s*"((?:[^"\\]|\\.)*)")?')

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
    ``too_large`` is the length of a frame that was over the history's
    ``max_bytes`` on its own: only its type, id and action were kept, and
    ``payload`` is None.
    """

    time: datetime
    direction: str
    type: str
    action: str | None
    message_id: str | None
    payload: Any
    latency: float | None
    too_large: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the time as an ISO 8601 string; ``too_large`` only when set."""
        item = {"time": self.time.isoformat(), "direction": self.direction, "type": self.type,
                "action": self.action, "message_id": self.message_id, "payload": self.payload,
                "latency": self.latency}
        if self.too_large is not None:
            item["too_large"] = self.too_large
        return item


# A frame as kept: (wall clock, monotonic clock, direction, text), or with a fifth item, the
# length of a too large frame whose text is only its head. A plain tuple, because it is
# built twice per call on every connection and read only when someone asks.
_Raw = tuple[float, float, str, str] | tuple[float, float, str, str, int]


class History:
    """The last frames of a connection and the requests its handlers answered.

    At most ``maxlen`` frames and ``max_bytes`` characters of their texts are
    kept (None: no bound), the oldest dropped first. The requests kept for
    :meth:`expect` have the same two bounds, a request counting the length
    of the message it came in; one larger than ``max_bytes`` is not kept.
    Thread-safe; payloads are kept as they were on the wire (secrets included),
    so mind where an export goes.
    """

    def __init__(self, maxlen: int | None = DEFAULT_HISTORY_SIZE,
                 max_bytes: int | None = DEFAULT_HISTORY_BYTES) -> None:
        if maxlen is not None and maxlen < 1:
            raise ValueError("maxlen must be at least 1 (or None for no bound)")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1 (or None for no bound)")
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self._count_limit = sys.maxsize if maxlen is None else maxlen
        self._byte_limit = sys.maxsize if max_bytes is None else max_bytes
        self._head = min(_HEAD, self._byte_limit)
        # _lock guards _frames and _bytes only: frame() takes it twice per call, so it is
        # a plain lock held for an append. _changed guards the rest.
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._frames: collections.deque[_Raw] = collections.deque(maxlen=maxlen)
        self._bytes = 0
        self._changed = threading.Condition()
        self._waiting = 0  # expect() calls waiting: handled() wakes them only if there are any
        self._frame_waiters = 0  # wait_for_frame() calls waiting: frame() wakes them only then
        self._requests: collections.deque[tuple[Any, int]] = collections.deque()
        self._request_bytes = 0
        self._dropped = 0  # requests the bounds dropped before expect() returned them
        self._closed = False

    # -- fed by the connection ------------------------------------------------

    def frame(self, direction: str, text: str) -> None:
        """A frame was written (">") or read ("<")."""
        # Twice per call on every connection: locals, bound lock methods, one comparison
        # for the common case (the deque's own maxlen drops the oldest frame by count).
        size = len(text)
        limit = self._byte_limit
        if size > limit:
            raw: _Raw = (time.time(), time.monotonic(), direction, text[:self._head], size)
            size = self._head
        else:
            raw = (time.time(), time.monotonic(), direction, text)
        frames = self._frames
        self._acquire()
        try:
            if len(frames) == self._count_limit:
                size -= len(frames[0][3])   # the append drops it
            frames.append(raw)
            total = self._bytes + size
            while total > limit:   # never drops the new frame: it fits on its own
                total -= len(frames.popleft()[3])
            self._bytes = total
        finally:
            self._release()
        if self._frame_waiters:   # a test tool waits (wait_for_frame): the common case pays one test
            with self._changed:
                self._changed.notify_all()

    def handled(self, request: Any, size: int = 0) -> None:
        """The handler has answered ``request``, read from ``size`` characters: wake ``expect``."""
        with self._changed:
            if size > self._byte_limit:
                self._dropped += 1
                return
            requests = self._requests
            requests.append((request, size))
            self._request_bytes += size
            while self._request_bytes > self._byte_limit or len(requests) > self._count_limit:
                self._request_bytes -= requests.popleft()[1]
                self._dropped += 1
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
        with self._lock:
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
        with self._lock:
            return len(self._frames)

    def last_frame_at(self) -> float | None:
        """The clock (time.monotonic) of the newest frame kept, None if there is none."""
        with self._lock:
            return self._frames[-1][1] if self._frames else None

    @property
    def size(self) -> int:
        """The characters of frame text kept now (what ``max_bytes`` bounds)."""
        with self._lock:
            return self._bytes

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
        with self._lock:
            self._frames.clear()
            self._bytes = 0
        with self._changed:
            self._requests.clear()
            self._request_bytes = 0

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

    def wait_for_frame(self, where: Callable[[HistoryEntry], bool],
                       timeout: float) -> HistoryEntry:
        """The oldest kept frame for which ``where`` holds, waiting up to ``timeout`` seconds.

        For test tools that look at frames the RPC layer does not pair with a
        call (an answer to a frame sent with ``send_raw``). TimeoutError if none came.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            self._frame_waiters += 1
            try:
                while True:
                    for entry in self.entries():
                        if where(entry):
                            return entry
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"no matching frame within {timeout:g} s")
                    self._changed.wait(left)
            finally:
                self._frame_waiters -= 1

    def _take_locked(self, request_cls: type[R],
                     where: Callable[[R], bool] | None) -> tuple[R] | None:
        for index, (request, size) in enumerate(self._requests):
            if isinstance(request, request_cls) and (where is None or where(request)):
                del self._requests[index]
                self._request_bytes -= size
                return (request,)
        return None

    def _timeout_message(self, request_cls: type, timeout: float | None) -> str:
        others = sum(isinstance(r, request_cls) for r, _ in self._requests)
        text = f"no matching {request_cls.__name__} within {timeout:g} s"
        if others:
            text += f" ({others} unmatched {request_cls.__name__} waiting)"
        if self._dropped:
            text += (f" ({self._dropped} requests dropped unreturned by the history's bounds:"
                     f" maxlen={self.maxlen}, max_bytes={self.max_bytes})")
        return text

    def __repr__(self) -> str:
        return f"<History {len(self)} frames, maxlen={self.maxlen}, max_bytes={self.max_bytes}>"


def _parse(raw: _Raw, calls: dict[tuple[str, str], tuple[str | None, float]],
           ) -> tuple[HistoryEntry, tuple[str, str] | None]:
    """One entry; the key to remember it by if it is a call (direction, id)."""
    wall, mono, sign, text = raw[:4]
    direction = _DIRECTIONS.get(sign, sign)
    when = datetime.fromtimestamp(wall, timezone.utc)
    if len(raw) == 5:
        return _placeholder(when, mono, direction, text, raw[4], calls)
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


def _placeholder(when: datetime, mono: float, direction: str, head: str, size: int,
                 calls: dict[tuple[str, str], tuple[str | None, float]],
                 ) -> tuple[HistoryEntry, tuple[str, str] | None]:
    """The entry of a frame too large to keep: what its head says, no payload."""
    match = _HEADER.match(head) if isinstance(head, str) else None   # a binary frame: no header
    kind = None if match is None else _TYPES.get(int(match.group(1)))
    if match is None or kind is None:
        return HistoryEntry(when, direction, "invalid", None, None, None, None, size), None
    message_id = match.group(2)
    if kind in ("CALL", "SEND"):
        entry = HistoryEntry(when, direction, kind, match.group(3), message_id, None, None, size)
        return entry, ((direction, message_id) if kind == "CALL" else None)
    other = "in" if direction == "out" else "out"
    call = calls.pop((other, message_id), None)
    action, latency = (None, None) if call is None else (call[0], mono - call[1])
    return HistoryEntry(when, direction, kind, action, message_id, None, latency, size), None
