"""Raw websocket peers for the connection tests, and the bounded waits every test shares."""
from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket

from ocpp_sync.runtime.listener import WebSocketServer

VERSIONS = ("1.6", "2.0.1", "2.1")


WAIT = 10.0  # the bound on every wait for something that should happen at once


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll a condition that has no event to wait on (a thread count), with a deadline."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        tick.wait(0.01)
    return True


class RawServer:
    """A websocket server that hands each connection's transport to the test, for raw frames."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._accepted: queue.Queue[Any] = queue.Queue()
        self._release = threading.Event()
        self._server = WebSocketServer("127.0.0.1", 0, subprotocols=[f"ocpp{version}"],
                                       on_connection=self._on_connection)
        self._server.start()
        self.url = f"ws://127.0.0.1:{self._server.port}/ocpp"

    def _on_connection(self, transport: Any, station_id: str, request: Any) -> None:
        self._accepted.put(RawPeer(transport))
        self._release.wait(60)

    def accept(self) -> RawPeer:
        return self._accepted.get(timeout=WAIT)

    def stop(self) -> None:
        self._release.set()
        self._server.stop()


class RawPeer:
    """One accepted connection, spoken to in JSON arrays."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def send(self, frame: Any) -> None:
        self.transport.send(frame if isinstance(frame, str) else json.dumps(frame))

    def receive(self, timeout: float = WAIT) -> list[Any]:
        text = self.transport.receive(timeout=timeout)
        assert text is not None, "the connection closed"
        return json.loads(text)

    def close(self) -> None:
        self.transport.close()

    def read_to_the_end(self) -> None:
        """Read and drop frames until the connection ends, answering the peer's close."""
        try:
            while self.transport.receive(timeout=WAIT) is not None:
                pass
        except Exception:  # a timeout or a broken stream: the end either way
            pass


class RawClient:
    """A plain websocket-client socket: sends whatever text the test writes."""

    def __init__(self, port: int, station_id: str, version: str) -> None:
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/{station_id}",
                                              subprotocols=[f"ocpp{version}"], timeout=WAIT)

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def receive(self) -> list[Any]:
        return json.loads(self.ws.recv())

    def exchange(self, frame: Any) -> list[Any]:
        self.send(frame)
        return self.receive()

    def close(self) -> None:
        self.ws.close(timeout=WAIT)


def call_error(frame: list[Any]) -> tuple[Any, ...]:
    """(type, id, code) of a CALLERROR, for compact assertions."""
    assert frame[0] == 4 and len(frame) == 5, frame
    assert isinstance(frame[3], str) and isinstance(frame[4], dict), frame
    return tuple(frame[:3])
