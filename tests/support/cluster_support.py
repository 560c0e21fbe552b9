"""Real redis-server and CSMS node processes for the cluster tests and benchmark."""
from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WAIT = 10.0
NODE_SCRIPT = Path(__file__).with_name("cluster_node.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lines(stream: Any) -> queue.Queue[str | None]:
    """A process's output as a queue of lines, so waits on it can time out."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, name="test-pipe-reader", daemon=True).start()
    return lines


def _wait_line(lines: queue.Queue[str | None], match: Callable[[str], bool],
               timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{what} not seen within {timeout} s; got: {seen[-20:]}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise RuntimeError(f"the process ended before {what}; got: {seen[-20:]}")
        seen.append(line)
        if match(line):
            return line


class RedisServer:
    """A throwaway redis-server on a free loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_line(_lines(self.process.stdout), lambda line: "Ready to accept connections" in line,
                   WAIT, "redis-server ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(WAIT)
            self.process = None


class Node:
    """A CSMS node in its own process (tests/cluster_node.py), driven by JSON lines; call ready()."""

    def __init__(self, redis_url: str, node_id: str, log_dir: Path, *, liveness: float = 1.5,
                 presence_ttl: float = 3.0, prefix: str = "test") -> None:
        self.node_id = node_id
        self.log_path = log_dir / f"node-{node_id}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(NODE_SCRIPT), redis_url, node_id, str(liveness),
                 str(presence_ttl), prefix],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        self._lines = _lines(self.process.stdout)
        self._lock = threading.Lock()
        self.port = 0
        self.url = ""

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-20:])

    def ready(self) -> Node:
        """Wait until the node listens; separate from starting, so nodes boot in parallel."""
        try:
            line = _wait_line(self._lines, lambda line: line.startswith("{"), WAIT * 6,
                              f"node {self.node_id} ready")
        except (TimeoutError, RuntimeError) as exc:
            raise AssertionError(f"{exc}\nnode log:\n{self.log_tail()}") from None
        self.port = int(json.loads(line)["port"])
        self.url = f"ws://127.0.0.1:{self.port}/ocpp"
        return self

    def ask(self, wait: float = WAIT, **command: Any) -> dict[str, Any]:
        """Send one command and wait for its answer line."""
        with self._lock:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            return json.loads(_wait_line(self._lines, lambda line: line.startswith("{"),
                                         wait, f"answer to {command}"))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(WAIT)

    def stop(self) -> None:
        """Ask the node to leave the cluster and exit; kill it if it does not."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
