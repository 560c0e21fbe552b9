"""A fault-injecting TCP proxy on loopback, for tests of what a broken network does to a connection.

Put it between a client and a server (``FaultProxy(server_port).start()``, then
point the client at ``proxy.port``) and break the link on demand:

- ``drop()``: close both sides of every live connection (each peer sees a FIN);
- ``stall()``: stop forwarding in both directions, sockets left open and silent
  (a peer behind a dead NAT); data already read is held, the rest waits in the
  kernel; new connections are accepted but stall too;
- ``cut(direction)``: forward only part of the next chunk, then close both sides
  (a frame cut in the middle);
- ``refuse()``: new connections are reset at once (the server is unreachable);
- ``resume()``: forward again (held data first) and accept new connections.

Threads: one accept thread, and two pumps per connection (one per direction);
``stop()`` ends and joins all of them within its timeout and reports any left.
"""
from __future__ import annotations

import enum
import itertools
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["FaultProxy", "UP", "DOWN", "BOTH"]

log = logging.getLogger("tests.faultproxy")

UP = "up"  # client to server
DOWN = "down"  # server to client
BOTH = "both"

_CHUNK = 65536


class _Mode(enum.Enum):
    FORWARD = "forward"
    STALL = "stall"
    REFUSE = "refuse"


def _reset_and_close(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN: what a peer sees from a host that refuses it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    """One proxied connection: the client's socket, ours to the server, and their two pumps."""

    def __init__(self, number: int, client: socket.socket, server: socket.socket) -> None:
        self.number = number
        self.client = client
        self.server = server
        self.dead = False
        self.running = 2
        self.threads: list[threading.Thread] = []

    def abort(self) -> None:
        """Wake both pumps and send each peer a FIN; the last pump to leave closes the sockets."""
        self.dead = True
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FaultProxy:
    """A TCP proxy from ``host:port`` (port 0 picks a free one) to ``target_host:target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, host: str = "127.0.0.1",
                 port: int = 0, name: str = "faultproxy", connect_timeout: float = 5.0) -> None:
        self.target = (target_host, target_port)
        self.name = name
        self._connect_timeout = connect_timeout
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        # _cond's lock guards every field below and each _Pair's dead/running.
        self._cond = threading.Condition()
        self._mode = _Mode.FORWARD
        self._cut: tuple[str, int | None] | None = None
        self._pairs: set[_Pair] = set()
        # Every pump not yet joined: a pump still runs for a moment after its pair is gone.
        self._pumps: list[threading.Thread] = []
        self._numbers = itertools.count(1)
        self._stopping = False
        self._started = False
        self._accept_thread: threading.Thread | None = None
        self.accepted = 0  # connections proxied through to the server
        self.refused = 0
        self.forwarded = {UP: 0, DOWN: 0}  # bytes

    # -- life cycle ---------------------------------------------------------

    def start(self) -> FaultProxy:
        with self._cond:
            if self._started or self._stopping:
                raise RuntimeError("already started or stopped")
            self._started = True
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> list[threading.Thread]:
        """Close everything and join every thread; returns the threads still alive (none, normally)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            first = not self._stopping
            self._stopping = True
            self._cond.notify_all()
        if first:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
        threads: list[threading.Thread] = []
        if self._accept_thread is None:
            self._close_listener()
        else:
            # Once the accept thread is gone no new pair can appear.
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
            threads.append(self._accept_thread)
        with self._cond:
            pairs = list(self._pairs)
            threads.extend(self._pumps)
        for pair in pairs:
            pair.abort()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]

    def __enter__(self) -> FaultProxy:
        if not self._started:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        left = self.stop()
        if left and exc_type is None:
            raise RuntimeError(f"fault proxy threads still running: {[t.name for t in left]}")

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    # -- faults -----------------------------------------------------------------

    def drop(self) -> int:
        """Close both sides of every live connection; returns how many there were."""
        with self._cond:
            pairs = [p for p in self._pairs if not p.dead]
            for pair in pairs:
                pair.abort()
            self._cond.notify_all()
        log.info("%s: dropped %d connection(s)", self.name, len(pairs))
        return len(pairs)

    def stall(self) -> None:
        """Stop forwarding, silently, until resume() (or drop/stop)."""
        self._set_mode(_Mode.STALL)

    def refuse(self) -> None:
        """Reset new connections at once until resume(); live ones are left alone."""
        self._set_mode(_Mode.REFUSE)

    def resume(self) -> None:
        """Forward again, held data first, and proxy new connections."""
        self._set_mode(_Mode.FORWARD)

    forward = resume

    def cut(self, direction: str = BOTH, keep: int | None = None) -> None:
        """Arm a one-shot cut: the next chunk in ``direction`` is forwarded only in part, then both sides close.

        ``keep`` bytes are forwarded (default: half the chunk); always fewer than
        the chunk holds, so the frame it belongs to is left incomplete.
        """
        if direction not in (UP, DOWN, BOTH):
            raise ValueError(f"direction must be {UP!r}, {DOWN!r} or {BOTH!r}")
        if keep is not None and keep < 0:
            raise ValueError("keep must be >= 0")
        with self._cond:
            self._cut = (direction, keep)

    @property
    def cut_pending(self) -> bool:
        with self._cond:
            return self._cut is not None

    @property
    def connections(self) -> int:
        """Live proxied connections."""
        with self._cond:
            return len(self._pairs)

    def wait_for(self, predicate: Callable[[FaultProxy], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (checked on every change of state), or the timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_accepted(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` connections in all have been proxied."""
        return self.wait_for(lambda proxy: proxy.accepted >= count, timeout)

    def _set_mode(self, mode: _Mode) -> None:
        with self._cond:
            self._mode = mode
            self._cond.notify_all()
        log.info("%s: %s", self.name, mode.value)

    # -- threads ------------------------------------------------------------------

    def _close_listener(self) -> None:
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        client, _addr = self._listener.accept()
                    except BlockingIOError:
                        continue
                    client.setblocking(True)
                    self._open(client)
        finally:
            selector.close()
            self._close_listener()

    def _open(self, client: socket.socket) -> None:
        with self._cond:
            refuse = self._mode is _Mode.REFUSE or self._stopping
            if refuse:
                self.refused += 1
                self._cond.notify_all()
        if refuse:
            _reset_and_close(client)
            return
        try:
            server = socket.create_connection(self.target, timeout=self._connect_timeout)
        except OSError as exc:
            log.info("%s: target %s:%d unreachable: %s", self.name, *self.target, exc)
            _reset_and_close(client)
            return
        server.settimeout(None)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(next(self._numbers), client, server)
        pair.threads = [
            threading.Thread(target=self._pump, args=(pair, client, server, UP), daemon=True,
                             name=f"{self.name}-{pair.number}-{UP}"),
            threading.Thread(target=self._pump, args=(pair, server, client, DOWN), daemon=True,
                             name=f"{self.name}-{pair.number}-{DOWN}"),
        ]
        with self._cond:
            if self._stopping:
                pair.abort()
            self._pairs.add(pair)
            self._pumps = [t for t in self._pumps if t.is_alive()] + pair.threads
            self.accepted += 1
            self._cond.notify_all()
        for thread in pair.threads:
            thread.start()

    def _pump(self, pair: _Pair, source: socket.socket, dest: socket.socket, direction: str) -> None:
        try:
            while True:
                try:
                    data = source.recv(_CHUNK)
                except OSError:
                    pair.abort()
                    return
                if not data:
                    # The sender is done; pass its FIN on and keep the other direction open.
                    try:
                        dest.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                alive, keep = self._gate(pair, direction, len(data))
                if not alive:
                    return
                try:
                    dest.sendall(data if keep is None else data[:keep])
                except OSError:
                    pair.abort()
                    return
                if keep is not None:
                    pair.abort()
                    log.info("%s: cut connection %d %s after %d of %d bytes", self.name, pair.number,
                             direction, keep, len(data))
                with self._cond:
                    self.forwarded[direction] += len(data) if keep is None else keep
                if keep is not None:
                    return
        finally:
            self._pump_done(pair)

    def _gate(self, pair: _Pair, direction: str, size: int) -> tuple[bool, int | None]:
        """Hold a chunk while stalled; then (False, _) if the connection is gone, else how much
        to forward: None for all of it, a number for that much before the cut."""
        with self._cond:
            self._cond.wait_for(lambda: pair.dead or self._stopping or self._mode is not _Mode.STALL)
            if pair.dead or self._stopping:
                return False, None
            if self._cut is not None and self._cut[0] in (direction, BOTH):
                keep = self._cut[1]
                self._cut = None
                # From here on the other direction forwards nothing: the link is being cut.
                pair.dead = True
                self._cond.notify_all()
                default = size // 2
                return True, min(default if keep is None else keep, size - 1) if size > 1 else 0
            return True, None

    def _pump_done(self, pair: _Pair) -> None:
        with self._cond:
            pair.running -= 1
            last = pair.running == 0
            if last:
                self._pairs.discard(pair)
                self._cond.notify_all()
        if last:
            for sock in (pair.client, pair.server):
                sock.close()

