"""Shutdown bounded by what the user asked, even while the CSMS's handler for our call is busy.

Real sockets on loopback; the CSMS's BootNotification handler blocks on an Event
(released at the end), so the answer to the charge point's call is not coming.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.background import ENV, Background, ctrl_c_works
from support.raw import WAIT

import ocpp_sync
from ocpp_sync import v16

PROMPT = 2.0  # the bound on a shutdown that must not wait for an answer


class BusyCSMS:
    """A CSMS whose BootNotification handler holds the call until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT)

        @self.csms.on(v16.BootNotificationRequest)
        def boot(station: Any, request: Any) -> Any:
            self.entered.set()
            self.release.wait(WAIT)
            return v16.BootNotificationResponse(current_time="2026-01-01T00:00:00Z", interval=10,
                                                status="Accepted")

        self.csms.start("127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.csms.port}/ocpp"


@pytest.fixture
def busy() -> Iterator[BusyCSMS]:
    server = BusyCSMS()
    yield server
    server.release.set()
    server.csms.stop()


def boot_in_background(cp: ocpp_sync.ChargePoint) -> threading.Thread:
    def call() -> None:
        try:
            cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1"))
        except ocpp_sync.ConnectionClosed:
            pass  # what close() makes of a call it does not wait for
    thread = threading.Thread(target=call, name="test-boot-call", daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("timeout", [0.5, None], ids=["asked", "default"])
def test_close_waits_no_longer_than_it_was_asked_to(busy: BusyCSMS, timeout: float | None) -> None:
    """Issue 17: cp.close() took 5 s whenever the CSMS's handler for our call was busy;
    by default it now gives calls in flight close_timeout (1 s)."""
    cp = ocpp_sync.ChargePoint("CP_BUSY", busy.url, timeout=WAIT)
    cp.connect()
    caller = boot_in_background(cp)
    assert busy.entered.wait(WAIT)
    started = time.monotonic()
    cp.close(timeout=timeout)
    assert time.monotonic() - started < PROMPT
    caller.join(WAIT)
    assert not caller.is_alive()


def test_ctrl_c_out_of_a_with_block_closes_at_once(busy: BusyCSMS) -> None:
    caller = None
    started = 0.0
    with pytest.raises(KeyboardInterrupt):
        with ocpp_sync.ChargePoint("CP_WITH", busy.url, timeout=WAIT) as cp:
            caller = boot_in_background(cp)
            assert busy.entered.wait(WAIT)
            started = time.monotonic()
            raise KeyboardInterrupt  # as Ctrl-C would, in the main thread
    assert time.monotonic() - started < PROMPT  # at once, not after the default close_timeout
    assert caller is not None
    caller.join(WAIT)


def test_ctrl_c_during_send_lets_the_process_exit_promptly(busy: BusyCSMS) -> None:
    script = textwrap.dedent(f"""
        import ocpp_sync
        from ocpp_sync import v16
        with ocpp_sync.ChargePoint("CP_SIGINT", {busy.url!r}) as cp:
            print("sending", flush=True)
            cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1"))
    """)
    process = Background([sys.executable, "-c", script], wait=WAIT)
    try:
        process.expect("sending")
        assert busy.entered.wait(WAIT)
        started = time.monotonic()
        process.process.send_signal(signal.SIGINT)
        process.wait()
        assert time.monotonic() - started < PROMPT, process.text
    finally:
        process.kill()


def test_serve_forever_ends_ctrl_c_quietly_with_130() -> None:
    script = textwrap.dedent("""
        import logging, ocpp_sync
        logging.basicConfig(level=logging.INFO)
        ocpp_sync.CSMS(versions=("1.6",)).serve_forever("127.0.0.1", 0)
    """)
    process = Background([sys.executable, "-c", script], wait=WAIT)
    try:
        process.expect("CSMS listening on")
        assert process.interrupt() == 130
    finally:
        process.kill()
    assert "Traceback" not in process.text and "KeyboardInterrupt" not in process.text, process.text
    assert "interrupted (Ctrl-C); stopping" in process.text


def test_serve_forever_still_runs_finally_blocks_after_ctrl_c() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, signal, threading, ocpp_sync
        csms = ocpp_sync.CSMS(versions=("1.6",))
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            csms.serve_forever("127.0.0.1", 0)
        finally:
            print("cleaned up", flush=True)
    """)], capture_output=True, text=True, timeout=WAIT, env=ENV, preexec_fn=ctrl_c_works)
    assert done.returncode == 130, done.stderr
    assert done.stdout == "cleaned up\n" and "Traceback" not in done.stderr


def test_ctrl_c_during_send_without_a_with_block_closes_promptly_too(busy: BusyCSMS) -> None:
    """try/finally: cp.close() after Ctrl-C must not drain the call its caller gave up."""
    script = textwrap.dedent(f"""
        import time
        import ocpp_sync
        from ocpp_sync import v16
        cp = ocpp_sync.ChargePoint("CP_FINALLY", {busy.url!r})
        cp.connect()
        try:
            print("sending", flush=True)
            cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1"))
        finally:
            started = time.monotonic()
            cp.close()
            print(f"closed in {{time.monotonic() - started:.2f}} s", flush=True)
    """)
    process = Background([sys.executable, "-c", script], wait=WAIT)
    try:
        process.expect("sending")
        assert busy.entered.wait(WAIT)
        process.process.send_signal(signal.SIGINT)
        match = process.expect(r"closed in ([0-9.]+) s")
        assert float(match.group(1)) < PROMPT, process.text
    finally:
        process.kill()


def test_csms_stop_does_not_wait_for_a_handler_still_running(caplog: pytest.LogCaptureFixture) -> None:
    server = BusyCSMS()
    try:
        cp = ocpp_sync.ChargePoint("CP_STOP", server.url, timeout=WAIT, reconnect=False)
        cp.connect()
        caller = boot_in_background(cp)
        assert server.entered.wait(WAIT)
        started = time.monotonic()
        with caplog.at_level("INFO", logger="ocpp_sync"):
            server.csms.stop(timeout=2.0)
        assert time.monotonic() - started < 2.0 + 0.5
        assert not [r for r in caplog.records if "did not stop" in r.getMessage()]
        assert any("BootNotification handler is still running" in r.getMessage() for r in caplog.records)
        cp.close()
        caller.join(WAIT)
    finally:
        server.release.set()
        server.csms.stop()
