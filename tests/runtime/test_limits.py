"""The open-file limit: raised at start, and a clear error (once) when accept() runs out."""
from __future__ import annotations

import errno
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.runtime import limits
from ocpp_sync.runtime.limits import AcceptFailures, descriptors_needed
from ocpp_sync.v16 import HeartbeatRequest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")

WAIT = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A CSMS in a process of its own whose open-file limit (soft and hard) is argv[1], or whose
# soft limit only is argv[2] when given; it prints its port and the limit after start.
CHILD = """
import logging, resource, sys
soft = int(sys.argv[1])
hard = int(sys.argv[2]) if len(sys.argv) > 2 else soft
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
logging.getLogger("ocpp_sync.transport").setLevel(logging.DEBUG)
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.sim.central import CentralSystem
csms = CSMS(versions=("1.6",), handshake_timeout=30.0)
CentralSystem(heartbeat_interval=300).install(csms)
csms.start("127.0.0.1", 0)
print(csms.port, resource.getrlimit(resource.RLIMIT_NOFILE)[0], flush=True)
sys.stdin.read()
csms.stop(timeout=2.0)
"""


class Child:
    """The CSMS process: its port, its soft limit after start, and its log lines as they come."""

    def __init__(self, *limit: int) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, *map(str, limit)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,),
                                        name="test-limits-child-log", daemon=True)
        self._reader.start()
        port, soft = self.proc.stdout.readline().split()
        self.port, self.soft = int(port), int(soft)

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)

    def wait_line(self, text: str) -> str:
        """The first log line (from now on or seen already) containing ``text``."""
        for line in self.seen:
            if text in line:
                return line
        deadline = time.monotonic() + WAIT
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())


@contextmanager
def child_csms(*limit: int) -> Iterator[Child]:
    child = Child(*limit)
    try:
        yield child
    finally:
        if child.proc.poll() is None:
            child.stop()


def station(port: int, name: str) -> ChargePoint:
    cp = ChargePoint(name, f"ws://127.0.0.1:{port}/ocpp", timeout=WAIT, reconnect=False,
                     connect_timeout=WAIT)
    cp.connect()
    return cp


def test_descriptors_needed_counts_one_socket_per_station_plus_spares() -> None:
    assert descriptors_needed(500) == 500 + limits.SPARE_DESCRIPTORS
    assert descriptors_needed(None) == limits.ASSUMED_CONNECTIONS + limits.SPARE_DESCRIPTORS


def test_out_of_descriptors_is_logged_once_per_episode_with_the_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    failures = AcceptFailures()
    caplog.set_level(logging.INFO, "ocpp_sync.transport")
    waits = [failures.failed(OSError(errno.EMFILE, "Too many open files")) for _ in range(8)]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "RLIMIT_NOFILE" in errors[0].getMessage() and "ulimit -n" in errors[0].getMessage()
    assert waits[0] == limits.FIRST_BACK_OFF and waits[1] == 2 * limits.FIRST_BACK_OFF
    assert waits[-1] == limits.LAST_BACK_OFF and waits == sorted(waits)
    failures.succeeded()
    assert "after 8 failed attempt(s)" in caplog.records[-1].getMessage()
    assert failures.failed(OSError(errno.ENFILE, "Too many open files in system")) == \
        limits.FIRST_BACK_OFF
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


def test_start_raises_a_low_soft_limit_toward_the_hard_one() -> None:
    with child_csms(64, 4096) as child:
        assert child.soft == 4096   # as far as the hard limit lets it
        child.wait_line("raised the open-file limit (RLIMIT_NOFILE) from 64 to 4096")
        child.wait_line("stations beyond it will not be accepted")


def test_out_of_descriptors_says_so_once_and_keeps_serving_its_stations() -> None:
    with child_csms(40) as child:
        child.wait_line("the open-file limit is 40 (hard limit 40)")
        first = station(child.port, "LIMITS_CP_1")
        hogs: list[socket.socket] = []
        try:
            # Silent connections, each holding a descriptor (and its handshake) in the CSMS.
            for _ in range(40):
                hogs.append(socket.create_connection(("127.0.0.1", child.port), timeout=WAIT))
            line = child.wait_line("out of file descriptors")
            assert "soft limit 40" in line and "ulimit -n" in line
            assert first.send(HeartbeatRequest()).current_time is not None  # still served
            child.wait_line("(3 in a row)")   # tried again, backing off, and said nothing more
            for hog in hogs:
                hog.close()
            hogs.clear()
            second = station(child.port, "LIMITS_CP_2")   # accepted again once some left
            assert second.send(HeartbeatRequest()).current_time is not None
            second.close()
            again = child.wait_line("accepting stations again after")
            assert int(again.split("after ")[1].split()[0]) >= 3
        finally:
            for hog in hogs:
                hog.close()
            first.close()
        child.stop()
    assert len([line for line in child.seen if line.startswith("ERROR")]) == 1
