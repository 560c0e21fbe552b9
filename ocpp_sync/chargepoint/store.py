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
dropped message's handle. Delivering the messages is the outbox's job
(``ocpp_sync.chargepoint.outbox``); this module only keeps them.

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
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OfflineQueue",
    "QueuedMessage",
    "Enqueued",
    "QUEUED_ACTIONS",
    "is_queued",
    "stored_count",
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


def stored_count(path: str | os.PathLike[str]) -> int:
    """How many messages the queue file at ``path`` holds, read without opening it as a queue.

    For a charge point that has not opened its queue yet (no connect, no send
    since the restart): nothing is created or written, and a missing file
    holds none.
    """
    location = pathlib.Path(path)
    if not location.exists():
        return 0
    try:
        db = sqlite3.connect(location.absolute().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    except sqlite3.Error:  # not a queue file (yet): no table
        return 0
    finally:
        db.close()


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
    """One stored message; ``payload`` is the wire-format dict, ids already fixed up.

    ``seq`` is None only for a newcomer a full queue refused (it was never stored).
    """

    seq: int | None
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
    dropped to make room: their handles must be failed. ``refused`` is the
    new message when it was the one dropped (its ``seq`` None), for the
    caller to report as it reports the evicted ones.
    """

    seq: int | None
    local_transaction_id: int | None
    evicted: tuple[QueuedMessage, ...]
    refused: QueuedMessage | None = None


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
                refused = QueuedMessage(None, version, action, payload, 0, self._clock(), kind, None)
                return Enqueued(None, None, evicted, refused)
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
