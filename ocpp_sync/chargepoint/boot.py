"""The charge point's side of registration: boot on every connection, hold back the rest until Accepted.

Opt-in (``ChargePoint(boot=...)``). On each connection the reconnect thread
sends the BootNotification; until the CSMS answers Accepted, the application's
messages wait (transaction messages stay in the offline queue, other sends
block up to their timeout), the CSMS's calls are answered as usual (2.0.1
B02.FR.01), and the boot is sent again after the interval the CSMS gave (B02.FR.08,
B03.FR.06; our own when it gave 0, B02.FR.07). Once Accepted, a Heartbeat goes out
after each ``interval`` seconds without any other exchange (the 1.6
HeartbeatInterval key and 2.0.1's OCPPCommCtrlr.HeartbeatInterval are intervals
of inactivity). A TriggerMessage for BootNotification sends the boot at once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ocpp_sync.errors import CallError, CallTimeout, ConnectionClosed, NotRegistered
from ocpp_sync.protocol.versions import message_info, version_module
from ocpp_sync.runtime.connection import Connection
from ocpp_sync.runtime.history import History

__all__ = ["Booter", "BOOT_RETRY"]

log = logging.getLogger("ocpp_sync.chargepoint")

#: Seconds between boots when the CSMS's answer gives an interval of 0, and after a failed boot.
BOOT_RETRY = 60.0


class Booter:
    """The boot and heartbeat of one charge point, run by its reconnect thread per connection."""

    def __init__(self, name: str, version: str, request: Any, history: History,
                 on_accepted: Callable[[Connection], None]) -> None:
        info = message_info(request)
        if info.action != "BootNotification" or not info.is_request or info.version != version:
            raise ValueError(f"boot must be an OCPP {version} BootNotificationRequest, "
                             f"not {type(request).__name__}")
        self.name = name
        self.request = request
        self.interval: float | None = None   # the heartbeat interval, once Accepted
        self.accepted = threading.Event()
        self._history = history   # the charge point's: its newest frame says when we last spoke
        self._on_accepted = on_accepted
        self._module = version_module(version)
        self._again = False                   # a TriggerMessage asked for the boot now
        self._wake = threading.Condition()    # notified by a trigger, a lost link, close()

    def wait_accepted(self, timeout: float) -> None:
        """Hold an application send until the CSMS has accepted us; NotRegistered after ``timeout``."""
        if not self.accepted.wait(timeout):
            raise NotRegistered(f"{self.name}: the CSMS has not accepted the boot within {timeout:g} s")

    def triggered(self, request: Any, response: Any) -> None:
        """After-answer hook of TriggerMessage: an accepted trigger for BootNotification boots now."""
        asked = getattr(request.requested_message, "value", request.requested_message)
        status = getattr(response.status, "value", response.status)
        if asked == "BootNotification" and status == "Accepted":
            with self._wake:
                self._again = True
                self._wake.notify_all()

    def wake(self) -> None:
        """The link is down or the charge point closes: ``serve`` looks up at once."""
        with self._wake:
            self._wake.notify_all()

    def _wait(self, down: threading.Event, timeout: float) -> bool:
        """Wait up to ``timeout`` for a trigger or the end; True if a trigger came."""
        with self._wake:
            self._wake.wait_for(lambda: self._again or down.is_set(), timeout)
            again, self._again = self._again, False
            return again

    def answer_trigger(self, request: Any) -> Any:
        """The TriggerMessage handler when the application has none: boots on request, nothing else."""
        asked = getattr(request.requested_message, "value", request.requested_message)
        status = "Accepted" if asked == "BootNotification" and not self.accepted.is_set() else \
            "Rejected" if asked == "BootNotification" else "NotImplemented"
        return self._module.RESPONSES["TriggerMessage"](status=status)

    def serve(self, connection: Connection, down: threading.Event) -> None:
        """Boot on ``connection`` until Accepted, then keep it alive, until ``down`` is set."""
        self.accepted.clear()
        opened = time.monotonic()
        while not down.is_set():
            if not self.accepted.is_set():
                wait = self._boot(connection)
                if not self.accepted.is_set():
                    self._wait(down, wait)   # a trigger ends the wait early: boot again
                continue
            interval = self.interval or BOOT_RETRY
            last = self._history.last_frame_at()
            quiet = time.monotonic() - max(opened, last if last is not None else opened)
            if quiet < interval:
                if self._wait(down, interval - quiet):
                    self._boot(connection)
                continue
            try:
                connection.send(self._module.REQUESTS["Heartbeat"]())
            except (CallError, CallTimeout, ConnectionClosed) as exc:
                log.info("%s: heartbeat failed: %s", self.name, exc)
                self._wait(down, interval)

    def _boot(self, connection: Connection) -> float:
        """Send the boot once; the seconds to wait before the next one if not Accepted."""
        try:
            response = connection.send(self.request)
        except (CallError, CallTimeout, ConnectionClosed) as exc:
            log.warning("%s: BootNotification failed: %s", self.name, exc)
            return BOOT_RETRY
        status = str(getattr(response.status, "value", response.status))
        interval = float(response.interval)
        if status == "Accepted":
            self.interval = interval or None
            log.info("%s: accepted by the CSMS (heartbeat every %g s)", self.name, interval)
            self.accepted.set()
            self._on_accepted(connection)
            return 0.0
        self.accepted.clear()
        log.info("%s: the CSMS answered the boot %s; booting again in %g s", self.name, status,
                 interval or BOOT_RETRY)
        return interval or BOOT_RETRY

