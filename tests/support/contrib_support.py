"""Helpers for the contrib tests: web servers in their own process groups, and raw HTTP on loopback."""
from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import websocket

ROOT = Path(__file__).resolve().parent.parent.parent
TESTS = ROOT / "tests" / "support"
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 15.0


class ServerProcess:
    """A web server in its own session; ``port`` is read from its log (it binds port 0)."""

    def __init__(self, argv: Sequence[str], *, ready: str, env: Mapping[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        self._proc = subprocess.Popen(
            list(argv), cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="contrib-server-log", daemon=True)
        self._reader.start()
        try:
            self.port = self._wait_for_port(re.compile(ready))
            # gunicorn listens before its worker has loaded the app: the first answer means ready.
            Web(self.base, timeout=START_TIMEOUT).request("/")
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.log.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_port(self, ready: re.Pattern[str]) -> int:
        while True:
            try:
                line = self._lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise RuntimeError("server did not start in time:\n" + "".join(self.log)) from None
            if line is None:
                raise RuntimeError("server exited:\n" + "".join(self.log))
            match = ready.search(line)
            if match:
                return int(match.group(1))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def stop(self) -> None:
        """TERM the whole process group, then KILL whatever is left of it; no process survives."""
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self._proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        try:
            # Also a worker that outlived its master.
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)


def werkzeug_flask() -> list[str]:
    return [sys.executable, str(TESTS / "contrib_flask_app.py"), "0"]


def gunicorn(conf: Path, app: str) -> list[str]:
    import gunicorn.config

    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", "127.0.0.1:0",
            "--chdir", str(TESTS), "--graceful-timeout", "3"]
    if hasattr(gunicorn.config, "ControlSocketDisable"):
        # gunicorn 24+ would otherwise open a control socket under $HOME.
        argv.append("--no-control-socket")
    return [*argv, app]


WERKZEUG_READY = r"Running on http://127\.0\.0\.1:(\d+)"
GUNICORN_READY = r"Listening at: http://127\.0\.0\.1:(\d+)"


class Web:
    """An HTTP client with cookies (Django's CSRF token travels in one)."""

    def __init__(self, base: str, timeout: float = HTTP_TIMEOUT) -> None:
        self.base = base
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def request(self, path: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                data: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path, method=method, headers=dict(headers or {}),
                                     data=data)
        try:
            with self._opener.open(req, timeout=self.timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    def json(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, body = self.request(path, **kwargs)
        try:
            return status, json.loads(body)
        except ValueError:
            raise AssertionError(f"{path}: HTTP {status}, not JSON: {body[:300]!r}") from None


def raw_upgrade(port: int, path: str, subprotocols: Sequence[str],
                headers: Mapping[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send a websocket upgrade request by hand; (status, headers, body) of the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        all_headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
        if subprotocols:
            all_headers["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
        all_headers.update(headers or {})
        conn.request("GET", path, headers=all_headers)
        answer = conn.getresponse()
        with answer:  # its file object keeps the socket open otherwise
            body = answer.read() if answer.status != 101 else b""
        return answer.status, answer.headers, body
    finally:
        conn.close()


def close_code_after_upgrade(port: int, path: str, subprotocol: str,
                             headers: Mapping[str, str] | None = None) -> int:
    """Offer ``subprotocol`` (websocket-client left out of the choice), return the close code that comes."""
    ws = websocket.WebSocket()
    lines = [f"{name}: {value}" for name, value in (headers or {}).items()]
    ws.connect(f"ws://127.0.0.1:{port}{path}", timeout=HTTP_TIMEOUT, suppress_origin=True,
               header=[*lines, f"Sec-WebSocket-Protocol: {subprotocol}"])
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, opcode
        return int.from_bytes(data[:2], "big")
    finally:
        ws.shutdown()
