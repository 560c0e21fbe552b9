"""Delivery of the offline queue: one transaction message on the wire at a time, oldest first.

The queue (``ocpp_sync.chargepoint.store``) keeps the messages; the outbox
decides who sends the next one (its own thread, or a caller's thread when
nothing is ahead), applies the TransactionRetry rules to a failed send, and
completes each message's :class:`QueuedCall`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from ocpp_sync.chargepoint.store import Enqueued, OfflineQueue, QueuedMessage
from ocpp_sync.errors import CallError, CallTimeout, ConnectionClosed, OCPPError, ValidationError
from ocpp_sync.protocol.retry import TransactionRetry
from ocpp_sync.scheduling.futures import settle

__all__ = ["QueuedCall", "Queued", "Outbox", "Link"]

log = logging.getLogger("ocpp_sync.offline_queue")



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


class Queued(OCPPError):
    """``send()`` of a transaction message that is kept for later instead of answered now.

    The message is not lost: it stays in the offline queue and is delivered
    in order once possible; ``handle`` (its :class:`QueuedCall`) gets the
    CSMS's response then. Not a ConnectionClosed on purpose: code that
    catches ConnectionClosed to send again would queue the transaction twice.
    """

    code = "Queued"

    def __init__(self, handle: QueuedCall, why: str) -> None:
        super().__init__(f"{handle.action} queued for later delivery: {why}")
        self.handle = handle


def _row_id(message: QueuedMessage) -> int:
    """The row of a stored message (only a refused newcomer has none, and it is never delivered)."""
    if message.seq is None:
        raise ValueError(f"{message.action} was never stored")
    return message.seq


def _dropped(message: str) -> OCPPError:
    return OCPPError(message, code="MessageDropped")


def _started_transaction_id(response: Any) -> int | None:
    value = response.get("transactionId") if isinstance(response, dict) else getattr(response, "transaction_id", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Link(Protocol):
    """What the outbox needs of a connection (``ocpp_sync.runtime.connection.Connection``)."""

    @property
    def closed(self) -> bool: ...

    def send_payload(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> Any: ...


class Outbox:
    """Delivers a queue's messages one at a time, oldest first, whenever a connection is up.

    The outbox sends stored wire payloads itself, with
    ``Connection.send_payload`` on the connection the owner hands to
    :meth:`online` each time one opens (:meth:`offline` when it ends), so a
    message is converted and validated once, by whoever queued it, and
    never goes back up to its owner to be sent. A send that raises
    ConnectionClosed (or times out because the link died) waits for the next
    connection; a CallError or CallTimeout is a failed attempt.

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

    def __init__(self, queue: OfflineQueue, *, version: str, name: str = "ocpp", timeout: float = 30.0,
                 retry: TransactionRetry | None = None,
                 on_dropped: Callable[[QueuedMessage, BaseException], None] | None = None) -> None:
        """``timeout``: seconds one attempt waits for its answer; ``retry``: what a failed attempt
        costs; ``on_dropped(message, exc)``: told of every message given up or refused."""
        self.queue = queue
        self.version = version
        self.name = name
        self.timeout = timeout
        self.retry = retry if retry is not None else TransactionRetry()
        self.write_ahead = queue.path != ":memory:"
        self._on_dropped = on_dropped
        self._connection: Link | None = None
        # _lock guards _handles, _online, _connection, _generation, _sender, _unstored and _hold_until;
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
            settle(handle, exc=ConnectionClosed(f"closed before {handle.action} was delivered; "
                                                 "it stays in the offline queue"))

    def online(self, connection: Link) -> None:
        """``connection`` is up: deliver on it."""
        with self._lock:
            self._online = True
            self._connection = connection
            self._generation += 1
        self._wake.set()

    def offline(self) -> None:
        """The connection is gone: hold the messages until online()."""
        with self._lock:
            self._online = False
            self._connection = None

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

    def send(self, action: str, payload: dict[str, Any]) -> QueuedCall:
        """:meth:`send_now` with a handle in every case: done when answered or given up."""
        handle, response = self.send_now(action, payload)
        if handle is None:
            handle = QueuedCall(None, action)
            handle.real_transaction_id = self._started_id(action, response)
            settle(handle, response)
        return handle

    def send_now(self, action: str, payload: dict[str, Any]) -> tuple[QueuedCall | None, Any]:
        """Send a wire payload from this thread if nothing is ahead of it, else queue it like :meth:`submit`.

        What goes on the wire may differ from ``payload`` (a 1.6 placeholder
        replaced by the real id). Returns (None, response) when it was answered without a row in the
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
                generation, connection = self._generation, self._connection
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
                response = self._call(connection, action, payload)
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
        return handle, result, [self._handles.pop(_row_id(m), None) for m in result.evicted]

    def _after_put(self, handle: QueuedCall, result: Enqueued, evicted: list[QueuedCall | None]) -> QueuedCall:
        """Outside the lock: fail the handles of what a full queue dropped, wake the outbox thread."""
        for message, old in zip(result.evicted, evicted, strict=True):
            self._give_up(message, old, _dropped(f"{message.action} dropped from the full offline queue"))
        if result.refused is not None:
            self._give_up(result.refused, handle, _dropped(f"{handle.action} refused: the offline queue is full"))
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
        settle(handle, response)
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
                generation, connection = self._generation, self._connection
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
                self._deliver_one(head, generation, connection)
            except Exception:  # a bug here must not end delivery for good
                log.exception("%s: delivering %s #%d failed", self.name, head.action, head.seq)
                self._stop.wait(1.0)
            finally:
                self._release()

    def _call(self, connection: Link | None, action: str, payload: dict[str, Any]) -> Any:
        """One attempt, with a new message id (see docs/offline-queue.md); a dead link is ConnectionClosed."""
        if connection is None or connection.closed:
            raise ConnectionClosed("offline")
        try:
            return connection.send_payload(action, payload, self.timeout)
        except CallTimeout:
            if connection.closed:  # the answer died with the link
                raise ConnectionClosed("the connection was lost while waiting") from None
            raise

    def _deliver_one(self, message: QueuedMessage, generation: int, connection: Link | None) -> None:
        if message.version != self.version:
            self._discard(message, _dropped(f"queued for OCPP {message.version}, the connection speaks "
                                            f"{self.version}"))
            return
        try:
            response = self._call(connection, message.action, message.payload)
        except (ConnectionClosed, ValidationError, CallError, CallTimeout) as exc:
            self._failure(message, generation, exc)
            return
        transaction_id = None
        if message.action == "StartTransaction" and message.version == "1.6":
            transaction_id = _started_transaction_id(response)
        self.queue.ack(_row_id(message), transaction_id=transaction_id)
        with self._lock:
            handle = self._handles.pop(_row_id(message), None)
        if handle is None:
            log.info("%s: delivered %s #%d queued before a restart", self.name, message.action, message.seq)
            return
        handle.real_transaction_id = transaction_id
        settle(handle, response)

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
        attempts = self.queue.record_attempt(_row_id(message))
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
        self.queue.discard(_row_id(message))
        with self._lock:
            handle = self._handles.pop(_row_id(message), None)
        self._give_up(message, handle, exc)

    def _give_up(self, message: QueuedMessage | None, handle: QueuedCall | None, exc: BaseException) -> None:
        if message is not None and self._on_dropped is not None:
            try:
                self._on_dropped(message, exc)
            except Exception:
                log.exception("%s: the on-dropped hook failed", self.name)
        if handle is not None:
            settle(handle, exc=exc)
