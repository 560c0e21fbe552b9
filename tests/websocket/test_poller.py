"""Both waiting paths (poll and select) see readable and writable sockets, and time out."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.raw import WAIT

from ocpp_sync.websocket import poller

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_transport_and_api_tests_pass_on_the_select_path() -> None:
    """Issue 17: nothing may need select.poll (Windows has none); Linux proves the other path."""
    env = dict(os.environ, OCPP_SYNC_SELECT="1")
    tests = ["tests/websocket/test_transports.py", "tests/api/test_api.py",
             "tests/security/test_tls_partial_record.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
