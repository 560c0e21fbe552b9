"""Both waiting paths (poll and select) see readable and writable sockets, and time out."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from support.raw import WAIT

from ocpp_sync.websocket import poller


@pytest.fixture(params=["poll", "select"])
def use_poll(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    forced = request.param == "poll"
    if forced and not hasattr(__import__("select"), "poll"):
        pytest.skip("no select.poll on this platform")
    monkeypatch.setattr(poller, "USE_POLL", forced)
    yield forced


def test_readable_and_writable(use_poll: bool) -> None:
    a, b = socket.socketpair()
    with a, b:
        reading, writing = poller.Poller(a), poller.Poller(a, write=True)
        started = time.monotonic()
        assert not reading.wait(50)
        assert time.monotonic() - started >= 0.04
        assert writing.wait(0)
        b.sendall(b"x")
        assert reading.wait(int(WAIT * 1000))


def test_a_full_buffer_is_not_writable(use_poll: bool) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        try:
            while True:
                a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        assert not poller.Poller(a, write=True).wait(20)


def test_the_environment_forces_the_select_path() -> None:
    code = "from ocpp_sync.websocket import poller; print(poller.USE_POLL)"
    out = subprocess.run([sys.executable, "-c", code], env={"OCPP_SYNC_SELECT": "1", "PATH": ""},
                         capture_output=True, text=True, timeout=60, cwd=".")
    assert out.stdout.strip() == "False", out.stderr
