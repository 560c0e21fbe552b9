"""The charge point's durable first-in first-out queue of transaction-related messages.

OCPP requires that transaction data survive a lost network and a restarted
process, and that it reach the CSMS in the order it happened. Each message is a
row in an SQLite table (standard library, in a file the user names, or in
memory), committed before ``put`` returns and deleted only by ``ack`` (the CSMS
answered) or ``discard`` (given up after the retries): a crash between the two
sends the message again, never loses it.

Which messages: :data:`QUEUED_ACTIONS`. The queue is bounded by
``max_messages``; when full, room is made by dropping the oldest message of the
least important kind present, newcomer included (:meth:`OfflineQueue.put`):

1. MeterValues (1.6) and TransactionEvent ``Updated`` (2.x): samples, the CSMS
   can bill from start and end values without them;
2. SecurityEventNotification;
3. never a transaction's start or end (1.6 StartTransaction/StopTransaction,
   2.x TransactionEvent ``Started``/``Ended``): those are stored even beyond the
   bound, with a logged error, because losing one loses a bill.

Every drop is logged at WARNING and reported to the caller, who fails the
dropped message's handle.

OCPP 1.6 transaction ids: the CSMS assigns the id in its answer to
StartTransaction, so messages about a transaction that started offline cannot
know it. ``put`` gives each queued StartTransaction a placeholder id (negative,
never reused, persisted); StopTransaction and MeterValues carry the placeholder
in ``transactionId``, and are rewritten to the real id, in the stored rows, when
``ack(seq, transaction_id=...)`` or :meth:`OfflineQueue.resolve_transaction_id`
records the answer. A message put after the answer gets the real id at once.

One process owns a queue file at a time; all methods are thread-safe (one lock,
one SQLite connection).
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ocpp_sync.errors import CallError, CallTimeout, ConnectionClosed, OCPPError, ValidationError
from ocpp_sync.protocol.retry import TransactionRetry

__all__ = [
    "OfflineQueue",
    "QueuedMessage",
    "Enqueued",
    "QueuedCall",
    "Outbox",
    "QUEUED_ACTIONS",
    "is_queued",
    "START",
    "END",
    "SAMPLE",
    "OTHER",
]

log = logging.getLogger("ocpp_sync.offline_queue")

QUEUED_ACTIONS: dict[str, frozenset[str]] = {
    "1.6": frozenset({"StartTransaction", "StopTransaction", "MeterValues", "SecurityEventNotification"}),
    "2.0.1": frozenset({"TransactionEvent", "SecurityEventNotification"}),
    "2.1": frozenset({"TransactionEvent", "SecurityEventNotification"}),
}

# Kinds of message, by how much losing one costs; SAMPLE goes first when the queue is full.
START = "start"
END = "end"
SAMPLE = "sample"
OTHER = "other"
_EVICTION_ORDER = (SAMPLE, OTHER)

DEFAULT_MAX_MESSAGES = 10_000
# Resolved 1.6 placeholders kept for messages the caller may still send with them.
_KEPT_TRANSACTION_IDS = 1000

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    kind TEXT NOT NULL,
    local_tx INTEGER
);
CREATE INDEX IF NOT EXISTS messages_kind ON messages (kind, seq);
CREATE INDEX IF NOT EXISTS messages_local_tx ON messages (local_tx);
CREATE TABLE IF NOT EXISTS transaction_ids (
    local INTEGER PRIMARY KEY,
    real INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def is_queued(version: str, action: str) -> bool:
    """Whether ``action`` of this OCPP version goes through the offline queue."""
    return action in QUEUED_ACTIONS.get(version, ())


def classify(version: str, action: str, payload: dict[str, Any]) -> str:
    """The kind (START, END, SAMPLE, OTHER) that decides what a full queue drops first."""
    if action == "StartTransaction":
        return START
    if action == "StopTransaction":
        return END
    if action == "MeterValues":
        return SAMPLE
    if action == "TransactionEvent":
        event_type = payload.get("eventType")
        return START if event_type == "Started" else END if event_type == "Ended" else SAMPLE
    return OTHER


@dataclass(frozen=True)
class QueuedMessage:
    """One stored message; ``payload`` is the wire-format dict, ids already fixed up."""

    seq: int
    version: str
    action: str
    payload: dict[str, Any]
    attempts: int
    created: float
    kind: str
    local_transaction_id: int | None


@dataclass(frozen=True)
class Enqueued:
    """What ``put`` did.

    ``seq`` is None when the new message itself was dropped (queue full of
    messages at least as important). ``local_transaction_id`` is the 1.6
    placeholder given to a StartTransaction. ``evicted`` are older messages
    dropped to make room: their handles must be failed.
    """

    seq: int | None
    local_transaction_id: int | None
    evicted: tuple[QueuedMessage, ...]


_COLUMNS = "seq, version, action, payload, attempts, created, kind, local_tx"


def _row(row: tuple[Any, ...]) -> QueuedMessage:
    seq, version, action, payload, attempts, created, kind, local_tx = row
    return QueuedMessage(seq, version, action, json.loads(payload), attempts, created, kind, local_tx)


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class OfflineQueue:
    """A durable, bounded FIFO of transaction-related messages (see the module docstring).

    ``path`` is the SQLite file (created if missing; reopening it resumes the
    same queue in the same order), or None / ":memory:" for a queue that lives
    as long as this object.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 max_messages: int = DEFAULT_MAX_MESSAGES, clock: Callable[[], float] = time.time) -> None:
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError(f"max_messages must be an integer >= 1, not {max_messages!r}")
        self.path = ":memory:" if path is None else os.fspath(path)
        self.max_messages = max_messages
        self._clock = clock
        # _cond's lock guards _db, _size and _closed; waiters in wait() are woken by put() and close().
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._size = 0  # rows in the table, kept in step with every commit: len() needs no SQL
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        db = self._db
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
            # Transaction data: a commit must be on disk before put() returns.
            db.execute("PRAGMA synchronous=FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise ValueError(f"{self.path}: offline queue schema {version}, this library reads {_SCHEMA_VERSION}")
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next_local_tx', -1)")
        self._size = self._count()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic step: every change inside commits together or not at all."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the offline queue is closed")

    # -- adding -------------------------------------------------------------

    def put(self, version: str, action: str, payload: dict[str, Any], *, head: bool = False) -> Enqueued:
        """Store a message at the tail (``head``: before every stored one); committed before this returns.

        ``head`` is for a message that was already on its way when later ones
        were queued behind it (its send failed): it keeps its place in line.
        A full queue then treats it as the oldest message of its kind.

        Raises ValueError for an action that is not queued in this version, or a
        payload that is not JSON.
        """
        if not is_queued(version, action):
            raise ValueError(f"{action} is not a queued message in OCPP {version!r}")
        if not isinstance(payload, dict):
            raise ValueError(f"payload must be a dict, not {type(payload).__name__}")
        kind = classify(version, action, payload)
        payload = dict(payload)
        with self._cond:
            self._check_open()
            with self._transaction() as db:
                evicted, accepted = self._make_room(db, kind, oldest=head)
                seq: int | None = None
                local_tx: int | None = None
                if accepted:
                    if version == "1.6" and action == "StartTransaction":
                        local_tx = self._allocate_local_id(db)
                    elif version == "1.6" and action in ("StopTransaction", "MeterValues"):
                        local_tx = self._fix_up(db, payload)
                    first = db.execute("SELECT MIN(seq) FROM messages").fetchone()[0] if head else None
                    seq = db.execute(
                        "INSERT INTO messages (seq, version, action, payload, attempts, created, kind, local_tx) "
                        "VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                        (None if first is None else first - 1, version, action, _dumps(payload), self._clock(),
                         kind, local_tx)).lastrowid
            self._size -= len(evicted)
            if seq is None:
                log.warning("offline queue full (%d messages): dropped the new %s", self.max_messages, action)
                return Enqueued(None, None, evicted)
            self._size += 1
            self._cond.notify_all()
        return Enqueued(seq, local_tx if action == "StartTransaction" else None, evicted)

    def _make_room(self, db: sqlite3.Connection, kind: str,
                   oldest: bool = False) -> tuple[tuple[QueuedMessage, ...], bool]:
        """Drop what the policy says until the newcomer fits; False if the newcomer is the one to drop.

        ``oldest``: the newcomer goes to the head, so it is the oldest of its kind.
        """
        evicted: list[QueuedMessage] = []
        count = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        while count >= self.max_messages:
            victim = None
            for candidate_kind in _EVICTION_ORDER:
                if candidate_kind == kind:
                    if oldest:
                        return tuple(evicted), False
                    # The newcomer is the newest of its kind; an older one of the same kind goes first.
                    victim = db.execute(f"SELECT {_COLUMNS} FROM messages WHERE kind = ? ORDER BY seq LIMIT 1",
                                        (kind,)).fetchone()
                    if victim is None:
                        return tuple(evicted), False
                    break
                victim = db.execute(f"SELECT {_COLUMNS} FROM messages WHERE kind = ? ORDER BY seq LIMIT 1",
                                    (candidate_kind,)).fetchone()
                if victim is not None:
                    break
            if victim is None:
                log.error("offline queue full (%d messages) of transaction starts and ends: keeping the new "
                          "one beyond the bound", count)
                break
            message = _row(victim)
            db.execute("DELETE FROM messages WHERE seq = ?", (message.seq,))
            log.warning("offline queue full: dropped %s #%d queued at %s", message.action, message.seq,
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(message.created)))
            evicted.append(message)
            count -= 1
        return tuple(evicted), True

    def _allocate_local_id(self, db: sqlite3.Connection) -> int:
        local = int(db.execute("SELECT value FROM meta WHERE key = 'next_local_tx'").fetchone()[0])
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_local_tx'", (local - 1,))
        db.execute("INSERT INTO transaction_ids (local, real) VALUES (?, NULL)", (local,))
        db.execute("DELETE FROM transaction_ids WHERE local > ? AND real IS NOT NULL "
                   "AND local NOT IN (SELECT local_tx FROM messages WHERE local_tx IS NOT NULL)",
                   (local + _KEPT_TRANSACTION_IDS,))
        return local

    def _fix_up(self, db: sqlite3.Connection, payload: dict[str, Any]) -> int | None:
        """Link a message to the placeholder it carries; put the real id in if it is known."""
        tx = payload.get("transactionId")
        if isinstance(tx, bool) or not isinstance(tx, int) or tx >= 0:
            return None
        row = db.execute("SELECT real FROM transaction_ids WHERE local = ?", (tx,)).fetchone()
        if row is None:
            return None
        if row[0] is not None:
            payload["transactionId"] = row[0]
        return tx

    def fix_up(self, version: str, action: str, payload: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """The payload a message about to be sent without being stored must carry, and its 1.6 placeholder.

        A 1.6 StopTransaction or MeterValues carrying a placeholder whose real
        id is known gets a copy with the real id; anything else comes back as
        is, without touching the database.
        """
        tx = payload.get("transactionId")
        if (version != "1.6" or action not in ("StopTransaction", "MeterValues") or isinstance(tx, bool)
                or not isinstance(tx, int) or tx >= 0):
            return payload, None
        real = self.real_transaction_id(tx)
        if real is None:
            return payload, tx
        return {**payload, "transactionId": real}, tx

    def forget_transaction_id(self, local_id: int) -> None:
        """A transaction's StopTransaction was answered without being stored: its placeholder is done with."""
        with self._cond:
            self._check_open()
            with self._transaction() as db:
                self._forget(db, local_id)

    def _forget(self, db: sqlite3.Connection, local_id: int) -> None:
        db.execute("DELETE FROM transaction_ids WHERE local = ? AND local NOT IN "
                   "(SELECT local_tx FROM messages WHERE local_tx IS NOT NULL)", (local_id,))

    # -- taking -------------------------------------------------------------

    def get(self, seq: int) -> QueuedMessage | None:
        """The stored message ``seq``, or None if it is gone."""
        with self._cond:
            self._check_open()
            row = self._db.execute(f"SELECT {_COLUMNS} FROM messages WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _row(row)

    def peek(self) -> QueuedMessage | None:
        """The oldest message, left in place; None when empty."""
        with self._cond:
            self._check_open()
            row = self._db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else _row(row)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue holds a message (True) or the timeout passes or it closes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or self._size > 0, timeout) and not self._closed

    def record_attempt(self, seq: int) -> int:
        """Count one failed delivery of ``seq`` (CALLERROR or no answer); returns the count so far.

        A lost connection is not a failed delivery: the message just waits for
        the next one, however many times the link drops.
        """
        with self._cond:
            self._check_open()
            with self._transaction() as db:
                db.execute("UPDATE messages SET attempts = attempts + 1 WHERE seq = ?", (seq,))
                row = db.execute("SELECT attempts FROM messages WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise KeyError(seq)
        return int(row[0])

    def ack(self, seq: int, *, transaction_id: int | None = None) -> bool:
        """The CSMS answered ``seq``: delete it. False if it was no longer there.

        For a 1.6 StartTransaction pass the CSMS's ``transaction_id``: it is
        recorded and the later messages rewritten in the same commit, so a crash
        can never separate the deletion from the fix-up.
        """
        return self._remove(seq, transaction_id)

    def discard(self, seq: int) -> bool:
        """Give ``seq`` up (its retries are spent): delete it. False if it was no longer there."""
        return self._remove(seq, None)

    def _remove(self, seq: int, transaction_id: int | None) -> bool:
        with self._cond:
            self._check_open()
            with self._transaction() as db:
                row = db.execute(f"SELECT {_COLUMNS} FROM messages WHERE seq = ?", (seq,)).fetchone()
                if row is None:
                    return False
                message = _row(row)
                db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                local = message.local_transaction_id
                if local is not None and message.action == "StartTransaction" and transaction_id is not None:
                    self._resolve(db, local, transaction_id)
                elif local is not None and message.action == "StopTransaction":
                    self._forget(db, local)
            self._size -= 1
        return True

    # -- 1.6 transaction ids ------------------------------------------------

    def resolve_transaction_id(self, local_id: int, real_id: int) -> int:
        """Record that placeholder ``local_id`` is the CSMS's ``real_id``; returns how many rows were rewritten.

        Raises KeyError for a placeholder this queue never gave out (or forgot
        after its transaction ended).
        """
        with self._cond:
            self._check_open()
            with self._transaction() as db:
                return self._resolve(db, local_id, real_id)

    def _resolve(self, db: sqlite3.Connection, local_id: int, real_id: int) -> int:
        if isinstance(real_id, bool) or not isinstance(real_id, int):
            raise ValueError(f"a 1.6 transaction id is an integer, not {real_id!r}")
        row = db.execute("SELECT real FROM transaction_ids WHERE local = ?", (local_id,)).fetchone()
        if row is None:
            raise KeyError(local_id)
        if row[0] is not None and row[0] != real_id:
            log.warning("transaction placeholder %d already resolved to %d; now %d", local_id, row[0], real_id)
        db.execute("UPDATE transaction_ids SET real = ? WHERE local = ?", (real_id, local_id))
        rewritten = 0
        for seq, text in db.execute("SELECT seq, payload FROM messages WHERE local_tx = ? AND action != "
                                    "'StartTransaction'", (local_id,)).fetchall():
            payload = json.loads(text)
            if payload.get("transactionId") in (local_id, row[0]):
                payload["transactionId"] = real_id
                db.execute("UPDATE messages SET payload = ? WHERE seq = ?", (_dumps(payload), seq))
                rewritten += 1
        return rewritten

    def real_transaction_id(self, local_id: int) -> int | None:
        """The CSMS's id for a placeholder, once known."""
        with self._cond:
            self._check_open()
            row = self._db.execute("SELECT real FROM transaction_ids WHERE local = ?", (local_id,)).fetchone()
        return None if row is None else row[0]

    # -- inspection and life cycle -----------------------------------------

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def __len__(self) -> int:
        with self._cond:
            self._check_open()
            return self._size

    def messages(self) -> list[QueuedMessage]:
        """Every stored message, oldest first (a snapshot)."""
        with self._cond:
            self._check_open()
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY seq").fetchall()
        return [_row(row) for row in rows]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the database and wake every wait(); idempotent. Stored messages stay in the file."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            self._cond.notify_all()

    def __enter__(self) -> OfflineQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)} messages"
        return f"<OfflineQueue {self.path!r} {state}>"


# -- delivery ---------------------------------------------------------------------------------------


def _settle(future: Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled by its owner: the message is still delivered
        pass


class QueuedCall(Future[Any]):
    """The handle of a queued message: a Future that gets the CSMS's response once it is delivered.

    It fails only when the message is given up: its retries spent (the last
    CallError or CallTimeout), or dropped from a full queue (OCPPError with code
    "MessageDropped"). ``local_transaction_id`` is the 1.6 placeholder a queued
    StartTransaction got: use it as ``transaction_id`` in the transaction's
    later messages until the real id is known (``transaction_id``).
    """

    def __init__(self, seq: int | None, action: str, local_transaction_id: int | None = None) -> None:
        super().__init__()
        self.seq = seq
        self.action = action
        self.local_transaction_id = local_transaction_id
        self.real_transaction_id: int | None = None

    @property
    def transaction_id(self) -> int | None:
        """The CSMS's id once StartTransaction is answered, the placeholder before."""
        return self.real_transaction_id if self.real_transaction_id is not None else self.local_transaction_id

    def __repr__(self) -> str:
        return f"<QueuedCall #{self.seq} {self.action} {self._state.lower()}>"


def _dropped(message: str) -> OCPPError:
    return OCPPError(message, code="MessageDropped")


def _started_transaction_id(response: Any) -> int | None:
    value = response.get("transactionId") if isinstance(response, dict) else getattr(response, "transaction_id", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Outbox:
    """Delivers a queue's messages one at a time, oldest first, whenever a connection is up.

    ``deliver(message)`` sends one message over the current connection and
    returns the response (object or wire dict); it raises ConnectionClosed when
    there is no connection or it was lost before the answer (also when the call
    timed out because the link is dead), CallError / CallTimeout when the CSMS
    failed to process it. The owner calls :meth:`online` each time a
    connection opens and :meth:`offline` when it ends.

    :meth:`send` is the fast way in: while a connection is up and nothing is
    queued, waiting for a retry or on the wire, the caller's thread sends the
    message itself, with no hand-off to the outbox thread; what cannot go now
    is queued, and a message whose send fails is stored at the head and then
    follows the same rules as a queued one. The outbox's lock decides who
    sends: at most one transaction message is on the wire at a time (the
    outbox thread's or a caller's), and a caller sends only when nothing is
    ahead of it, so messages go out in the order of the send/submit calls.
    With a file-backed queue (``write_ahead``) the message is stored before it
    is sent and deleted once answered, as a queued one is, so a crash in
    between sends it again; in memory, storing it would protect nothing, so a
    row is written only if the send fails.

    Delivery is at least once: a message whose answer is lost with the link is
    sent again on the next connection (with a new message id).
    """

    def __init__(self, queue: OfflineQueue, deliver: Callable[[QueuedMessage], Any], *, version: str,
                 name: str = "ocpp", retry: TransactionRetry | None = None,
                 on_dropped: Callable[[QueuedMessage, BaseException], None] | None = None) -> None:
        self.queue = queue
        self.version = version
        self.name = name
        self.retry = retry if retry is not None else TransactionRetry()
        self.write_ahead = queue.path != ":memory:"
        self._deliver = deliver
        self._on_dropped = on_dropped
        # _lock guards _handles, _online, _generation, _sender, _unstored and _hold_until;
        # _wake is set by put, online(), stop() and whenever the wire is free again.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when _sender goes back to None
        self._handles: dict[int, QueuedCall] = {}
        self._online = False
        # Counts online() calls, so a loss seen on an old connection cannot mark a newer one offline.
        self._generation = 0
        self._sender: int | None = None  # the thread with a transaction message on the wire
        self._unstored = 0  # 1 while that message is a caller's and has no row (in-memory queue)
        self._hold_until = 0.0  # monotonic time before which nothing is sent: a failed head's retry wait
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering; a call in flight ends when its connection closes.

        The queue keeps what is left for the next run; the handles still
        waiting fail with ConnectionClosed, so no caller waits forever. A
        caller's send in flight is waited for (bounded), so its message is
        stored or answered before the owner closes the queue.
        """
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: the outbox did not stop within %.0f s", self.name, timeout)
        me = threading.get_ident()
        with self._idle:
            if not self._idle.wait_for(lambda: self._sender in (None, me), timeout):
                log.warning("%s: a send in flight did not end within %.0f s", self.name, timeout)
            handles = list(self._handles.values())
            self._handles.clear()
        for handle in handles:
            _settle(handle, exc=ConnectionClosed(f"closed before {handle.action} was delivered; "
                                                 "it stays in the offline queue"))

    def online(self) -> None:
        """A connection is up: deliver."""
        with self._lock:
            self._online = True
            self._generation += 1
        self._wake.set()

    def offline(self) -> None:
        """The connection is gone: hold the messages until online()."""
        with self._lock:
            self._online = False

    @property
    def is_online(self) -> bool:
        """Whether messages go out: between online() and offline() or a lost send."""
        return self._online

    def submit(self, action: str, payload: dict[str, Any]) -> QueuedCall:
        """Queue a wire payload; the handle fails at once if a full queue refused it."""
        if self._stop.is_set():
            raise ConnectionClosed("the outbox is stopped")
        with self._lock:
            queued = self._put_locked(action, payload)
        return self._after_put(*queued)

    def send(self, action: str, payload: dict[str, Any], call: Callable[[dict[str, Any]], Any]) -> QueuedCall:
        """:meth:`send_now` with a handle in every case: done when answered or given up."""
        handle, response = self.send_now(action, payload, call)
        if handle is None:
            handle = QueuedCall(None, action)
            handle.real_transaction_id = self._started_id(action, response)
            _settle(handle, response)
        return handle

    def send_now(self, action: str, payload: dict[str, Any],
                 call: Callable[[dict[str, Any]], Any]) -> tuple[QueuedCall | None, Any]:
        """Send a wire payload from this thread if nothing is ahead of it, else queue it like :meth:`submit`.

        ``call(payload)`` sends on the current connection and returns the
        response, raising as ``deliver`` does; the payload it gets may differ
        from the one given (a 1.6 placeholder replaced by the real id).
        Returns (None, response) when it was answered without a row in the
        queue (no handle is made: this is every online call's path), else
        (handle, None): done when answered or given up, not done when queued
        because it could not go now or its send failed (lost link: not an
        attempt; CallError / CallTimeout: a failed attempt, retried by the
        outbox as for any queued message).
        """
        if self._stop.is_set():
            raise ConnectionClosed("the outbox is stopped")
        with self._lock:
            if (not self._online or self._sender is not None or len(self.queue) > 0
                    or self._hold_until > time.monotonic()):
                queued = self._put_locked(action, payload)
            else:
                queued = None
                self._sender = threading.get_ident()
                generation = self._generation
                try:
                    payload, local = self.queue.fix_up(self.version, action, payload)
                    handle: QueuedCall | None = None
                    if self.write_ahead:  # the queue is empty: this put never evicts nor refuses
                        handle = self._put_locked(action, payload)[0]
                    else:
                        self._unstored = 1
                except BaseException:
                    self._sender = None
                    self._unstored = 0
                    self._idle.notify_all()
                    raise
        if queued is not None:
            return self._after_put(*queued), None
        try:
            try:
                response = call(payload)
            except BaseException as exc:
                kept = self._keep(action, payload, handle, generation, exc)
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt and the like: the message is kept all the same
                return kept, None
            return self._answered(action, local, handle, response)
        finally:
            self._release()

    def _put_locked(self, action: str, payload: dict[str, Any],
                    head: bool = False) -> tuple[QueuedCall, Enqueued, list[QueuedCall | None]]:
        result = self.queue.put(self.version, action, payload, head=head)
        handle = QueuedCall(result.seq, action, result.local_transaction_id)
        if result.seq is not None:
            self._handles[result.seq] = handle
        return handle, result, [self._handles.pop(m.seq, None) for m in result.evicted]

    def _after_put(self, handle: QueuedCall, result: Enqueued, evicted: list[QueuedCall | None]) -> QueuedCall:
        """Outside the lock: fail the handles of what a full queue dropped, wake the outbox thread."""
        for message, old in zip(result.evicted, evicted, strict=True):
            self._give_up(message, old, _dropped(f"{message.action} dropped from the full offline queue"))
        if result.seq is None:
            self._give_up(None, handle, _dropped(f"{handle.action} refused: the offline queue is full"))
        else:
            self._wake.set()
        return handle

    def _started_id(self, action: str, response: Any) -> int | None:
        """The transaction id a 1.6 StartTransaction's answer gives, else None."""
        if action == "StartTransaction" and self.version == "1.6":
            return _started_transaction_id(response)
        return None

    def _answered(self, action: str, local: int | None, handle: QueuedCall | None,
                  response: Any) -> tuple[QueuedCall | None, Any]:
        """A caller's send was answered: forget its row (if any) and its 1.6 placeholder if it ended one."""
        if local is not None and action == "StopTransaction":
            self.queue.forget_transaction_id(local)
        if handle is None:
            return None, response
        transaction_id = self._started_id(action, response)
        if handle.seq is not None:
            self.queue.ack(handle.seq, transaction_id=transaction_id)
            with self._lock:
                self._handles.pop(handle.seq, None)
        handle.real_transaction_id = transaction_id
        _settle(handle, response)
        return handle, None

    def _keep(self, action: str, payload: dict[str, Any], handle: QueuedCall | None, generation: int,
              exc: BaseException) -> QueuedCall:
        """A caller's send failed: store the message at the head (if it has no row yet), then
        apply the outbox thread's rules to the failure. Runs before the wire is released, so
        nothing queued meanwhile can overtake it."""
        if handle is None or handle.seq is None:
            with self._lock:
                queued = self._put_locked(action, payload, head=True)
            handle = self._after_put(*queued)
            if handle.seq is None:
                return handle  # a full queue refused it: the handle has failed
        message = self.queue.get(handle.seq)
        if message is None:
            return handle  # dropped from a full queue while in flight: the handle has failed
        if not isinstance(exc, Exception) or not self._failure(message, generation, exc):
            log.warning("%s: sending %s failed (%r); it stays in the offline queue", self.name, action, exc)
        return handle

    def _release(self) -> None:
        """Free the wire; the outbox thread is woken only if something queued is waiting for it."""
        with self._lock:
            self._sender = None
            self._unstored = 0
            if self._stop.is_set():   # stop() waits for the wire to be free; nobody else does
                self._idle.notify_all()
            waiting = self._has_queued_locked()
        if waiting:
            self._wake.set()

    def _has_queued_locked(self) -> bool:
        return not self.queue.closed and len(self.queue) > 0

    def __len__(self) -> int:
        """Messages not yet answered nor given up: the queue's, plus a caller's send in flight without a row."""
        return len(self.queue) + self._unstored

    def _run(self) -> None:
        me = threading.get_ident()
        while True:
            self._wake.clear()
            if self._stop.is_set():
                return
            head = None
            with self._lock:
                hold = self._hold_until - time.monotonic()
                generation = self._generation
                if hold <= 0 and self._online and self._sender is None and self._has_queued_locked():
                    head = self.queue.peek()
                    if head is not None:
                        self._sender = me
            if hold > 0:
                self._stop.wait(hold)
                continue
            if head is None:
                self._wake.wait()
                continue
            try:
                self._deliver_one(head, generation)
            except Exception:  # a bug here must not end delivery for good
                log.exception("%s: delivering %s #%d failed", self.name, head.action, head.seq)
                self._stop.wait(1.0)
            finally:
                self._release()

    def _deliver_one(self, message: QueuedMessage, generation: int) -> None:
        if message.version != self.version:
            self._discard(message, _dropped(f"queued for OCPP {message.version}, the connection speaks "
                                            f"{self.version}"))
            return
        try:
            response = self._deliver(message)
        except (ConnectionClosed, ValidationError, CallError, CallTimeout) as exc:
            self._failure(message, generation, exc)
            return
        transaction_id = None
        if message.action == "StartTransaction" and message.version == "1.6":
            transaction_id = _started_transaction_id(response)
        self.queue.ack(message.seq, transaction_id=transaction_id)
        with self._lock:
            handle = self._handles.pop(message.seq, None)
        if handle is None:
            log.info("%s: delivered %s #%d queued before a restart", self.name, message.action, message.seq)
            return
        handle.real_transaction_id = transaction_id
        _settle(handle, response)

    def _failure(self, message: QueuedMessage, generation: int, exc: Exception) -> bool:
        """Apply the delivery rules to a failed send of the stored ``message``; False for an unknown error."""
        if isinstance(exc, ConnectionClosed):  # not an attempt: it waits for the next connection
            with self._lock:
                if self._generation == generation:
                    self._online = False
        elif isinstance(exc, ValidationError):
            self._discard(message, exc)
        elif isinstance(exc, (CallError, CallTimeout)):
            self._failed(message, exc)
        else:
            return False
        return True

    def _failed(self, message: QueuedMessage, exc: OCPPError) -> None:
        attempts = self.queue.record_attempt(message.seq)
        delay = self.retry.delay_after(attempts)
        if delay is None:
            log.error("%s: %s #%d given up after %d attempts: %s", self.name, message.action, message.seq,
                      attempts, exc)
            self._discard(message, exc)
            return
        log.warning("%s: %s #%d failed (%s); attempt %d of %d in %g s", self.name, message.action, message.seq,
                    exc, attempts + 1, self.retry.attempts, delay)
        # Strict order: nothing behind it goes first, so the whole queue waits.
        with self._lock:
            self._hold_until = time.monotonic() + delay

    def _discard(self, message: QueuedMessage, exc: BaseException) -> None:
        self.queue.discard(message.seq)
        with self._lock:
            handle = self._handles.pop(message.seq, None)
        self._give_up(message, handle, exc)

    def _give_up(self, message: QueuedMessage | None, handle: QueuedCall | None, exc: BaseException) -> None:
        if message is not None and self._on_dropped is not None:
            try:
                self._on_dropped(message, exc)
            except Exception:
                log.exception("%s: the on-dropped hook failed", self.name)
        if handle is not None:
            _settle(handle, exc=exc)
