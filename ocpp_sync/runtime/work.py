"""What the connection's threads carry: our calls as they wait, our own tasks, and the dict-in call."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.rpc import OutgoingCall, PeerCall
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.scheduling.futures import settle

if TYPE_CHECKING:
    from ocpp_sync.runtime.connection import Connection

__all__ = ["call_with_dict"]


def _settle(pending: _Pending, result: Any = None, exc: BaseException | None = None) -> bool:
    """Resolve a call's future (unless cancelled or resolved already), then raise its flag.

    True if this outcome is the one the caller gets (so it is counted once).
    """
    won = settle(pending.future, result, exc)
    pending.settled = True   # after the future: whoever sees the flag finds the outcome there
    return won


class _Pending(OutgoingCall):
    """One of our calls, as the runtime waits for it: a future, a deadline, who reads its answer."""

    __slots__ = ("future", "deadline", "timeout", "blocking", "settled", "sent")

    def __init__(self, unique_id: str, action: str, text: str, response_cls: type,
                 timeout: float, blocking: bool) -> None:
        super().__init__(unique_id, action, text, response_cls)
        self.blocking = blocking   # a send() caller waits for it and reads its answer if it can
        self.settled = False       # its future has its outcome: cheaper to test than Future.done()
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.future: Future[Any] = Future()
        self.sent = 0.0   # when it was written, for the latency of its answer

    def start(self) -> bool:
        return self.future.set_running_or_notify_cancel()


class _Task:
    """Work for the handling role that is ours, not the peer's: an on-connect callback."""

    __slots__ = ("run",)

    def __init__(self, run: Callable[[], None]) -> None:
        self.run = run


_Work = _Task | PeerCall


def call_with_dict(connection: Connection, action: str, payload: Mapping[str, Any],
                   timeout: float | None) -> dict[str, Any] | None:
    """The dict-in, dict-out call, validated both ways through the message classes."""
    module = version_module(connection.version)
    try:
        request_cls = module.REQUESTS[action]
    except KeyError:
        raise ValueError(f"{action!r} is not an OCPP {connection.version} action") from None
    response = connection.send(from_payload(request_cls, dict(payload)), timeout)
    return None if response is None else to_payload(response)
