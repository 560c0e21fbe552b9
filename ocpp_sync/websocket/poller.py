"""Waiting for one socket to become readable or writable, on every platform.

``select.poll`` where the platform has it (no limit on the descriptor's number,
one registration per socket); ``select.select`` elsewhere (Windows, where lab
benches and notebooks often run). ``OCPP_SYNC_SELECT=1`` in the environment
forces the select path, so that the test suite can prove it on Linux too.
"""
from __future__ import annotations

import os
import select
from typing import Any

__all__ = ["Poller", "USE_POLL"]

#: Whether new pollers use ``select.poll`` (else ``select.select``).
USE_POLL = hasattr(select, "poll") and os.environ.get("OCPP_SYNC_SELECT", "") != "1"


class Poller:
    """Waits for one socket, for reading (``write=False``) or for writing."""

    def __init__(self, sock: Any, *, write: bool = False) -> None:
        self._sock = sock
        self._write = write
        self._poll: Any = None
        if USE_POLL:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLOUT if write else select.POLLIN | select.POLLPRI)

    def wait(self, millis: int) -> bool:
        """True once the socket is ready (or in error, which the next read or write reports);
        False after ``millis`` milliseconds (0: just look; negative: no limit)."""
        if self._poll is not None:
            return bool(self._poll.poll(millis))
        waiting = [self._sock]
        try:
            readable, writable, broken = select.select(
                [] if self._write else waiting, waiting if self._write else [], waiting,
                None if millis < 0 else millis / 1000)
        except (OSError, ValueError):
            return True   # a closed socket: let the read or write say so
        return bool(readable or writable or broken)
