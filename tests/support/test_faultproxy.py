"""The fault-injecting proxy itself, checked with plain sockets against an echo server."""
from __future__ import annotations

import socket
import threading

import pytest

from support.faultproxy import DOWN, UP, FaultProxy

WAIT = 10.0  # generous: only a broken proxy ever waits this long
QUIET = 0.3  # how long "nothing arrives" is watched for


class EchoServer:
    """Echoes every byte back; records what each connection received and whether it saw EOF."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cond = threading.Condition()
        self.received: list[bytearray] = []
        self.eof: list[bool] = []
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.accept_thread = threading.Thread(target=self._accept, name="echo-accept", daemon=True)
        self.accept_thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.cond:
                index = len(self.received)
                self.received.append(bytearray())
                self.eof.append(False)
                self.conns.append(conn)
                thread = threading.Thread(target=self._echo, args=(conn, index), name=f"echo-{index}", daemon=True)
                self.threads.append(thread)
                self.cond.notify_all()
            thread.start()

    def _echo(self, conn: socket.socket, index: int) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                if data:
                    self.received[index] += data
                else:
                    self.eof[index] = True
                self.cond.notify_all()
            if not data:
                try:
                    conn.shutdown(socket.SHUT_WR)  # answer a FIN with a FIN, as a polite server does
                except OSError:
                    pass
                return
            try:
                conn.sendall(data)
            except OSError:
                return

    def wait(self, predicate, timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.accept_thread.join(WAIT)
        with self.cond:
            conns, threads = list(self.conns), list(self.threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(WAIT)
        for conn in conns:
            conn.close()
        assert not any(t.is_alive() for t in threads + [self.accept_thread])


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo):
    with FaultProxy(echo.port, name="fp-test") as p:
        yield p


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def recv_until_eof(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_forwards_both_ways(proxy, echo):
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        big = bytes(range(256)) * 4096  # 1 MiB, many chunks
        sender = threading.Thread(target=sock.sendall, args=(big,))
        sender.start()
        assert recv_exactly(sock, len(big)) == big
        sender.join(WAIT)
    assert proxy.wait_for(lambda p: p.connections == 0, WAIT)
    assert proxy.accepted == 1 and proxy.forwarded == {UP: 5 + len(big), DOWN: 5 + len(big)}


def test_a_client_close_reaches_the_server_and_frees_the_connection(proxy, echo):
    sock = connect(proxy)
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    sock.shutdown(socket.SHUT_WR)
    assert echo.wait(lambda: echo.eof[:1] == [True])
    assert recv_until_eof(sock) == b""
    sock.close()
    assert proxy.wait_for(lambda p: p.connections == 0, WAIT)


def test_drop_closes_both_sides_and_new_connections_still_work(proxy, echo):
    first, second = connect(proxy), connect(proxy)
    for sock in (first, second):
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
    assert proxy.drop() == 2
    assert recv_until_eof(first) == b"" and recv_until_eof(second) == b""
    assert echo.wait(lambda: echo.eof[:2] == [True, True])
    assert proxy.wait_for(lambda p: p.connections == 0, WAIT)
    first.close()
    second.close()
    with connect(proxy) as third:
        third.sendall(b"again")
        assert recv_exactly(third, 5) == b"again"


def test_stall_is_silent_and_resume_delivers_what_was_held(proxy, echo):
    with connect(proxy) as sock:
        sock.sendall(b"before")
        assert recv_exactly(sock, 6) == b"before"
        proxy.stall()
        sock.sendall(b"during")
        sock.settimeout(QUIET)
        with pytest.raises(socket.timeout):
            sock.recv(100)  # neither data nor EOF: the link is just quiet
        assert not echo.wait(lambda: len(echo.received[0]) > 6, QUIET)
        assert echo.eof == [False]
        proxy.resume()
        sock.settimeout(WAIT)
        assert recv_exactly(sock, 6) == b"during"
        assert bytes(echo.received[0]) == b"beforeduring"


def test_new_connections_stall_too(proxy, echo):
    proxy.stall()
    with connect(proxy) as sock:
        sock.sendall(b"hi")
        assert proxy.wait_accepted(1, WAIT)
        assert not echo.wait(lambda: echo.received and echo.received[0], QUIET)
        proxy.resume()
        assert recv_exactly(sock, 2) == b"hi"


def test_cut_downstream_delivers_part_of_a_chunk_then_closes(proxy, echo):
    with connect(proxy) as sock:
        proxy.cut(DOWN, keep=10)
        sock.sendall(b"a" * 100)
        assert recv_until_eof(sock) == b"a" * 10
    assert echo.wait(lambda: echo.eof[:1] == [True])
    assert bytes(echo.received[0]) == b"a" * 100
    assert not proxy.cut_pending


def test_cut_upstream_by_default_keeps_half(proxy, echo):
    with connect(proxy) as sock:
        proxy.cut(UP)
        sock.sendall(b"b" * 100)
        assert recv_until_eof(sock) == b""  # the echo of the half that got through is not forwarded
    assert echo.wait(lambda: echo.eof[:1] == [True])
    assert bytes(echo.received[0]) == b"b" * 50


def test_cut_is_one_shot(proxy, echo):
    with connect(proxy) as sock:
        proxy.cut(keep=1)
        sock.sendall(b"xyz")
        assert recv_until_eof(sock) == b""  # one byte went up, the connection closed before the echo
    assert echo.wait(lambda: echo.eof[:1] == [True])
    with connect(proxy) as sock:
        sock.sendall(b"whole")
        assert recv_exactly(sock, 5) == b"whole"


def test_refuse_resets_new_connections_until_resume(proxy, echo):
    with connect(proxy) as live:
        assert proxy.wait_accepted(1, WAIT)
        proxy.refuse()
        with pytest.raises(ConnectionResetError):
            # The reset may come during connect() already, or on the first read.
            with connect(proxy) as refused:
                refused.sendall(b"x")
                refused.recv(10)
        assert proxy.refused == 1 and echo.wait(lambda: len(echo.received) == 1)
        live.sendall(b"still")  # a live connection is left alone
        assert recv_exactly(live, 5) == b"still"
        proxy.resume()
        with connect(proxy) as later:
            later.sendall(b"ok")
            assert recv_exactly(later, 2) == b"ok"


def test_an_unreachable_target_resets_the_client():
    spare = socket.create_server(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    with FaultProxy(port, name="fp-dead") as proxy:
        with pytest.raises(ConnectionResetError), connect(proxy) as sock:
            sock.recv(10)


def proxy_threads(name: str) -> list:
    return [t for t in threading.enumerate() if t.name.startswith(name + "-")]


def test_stop_ends_every_thread_even_with_stalled_and_live_connections(echo):
    proxy = FaultProxy(echo.port, name="fp-stop").start()
    socks = [connect(proxy) for _ in range(4)]
    for sock in socks:
        sock.sendall(b"1")
        assert recv_exactly(sock, 1) == b"1"
    proxy.stall()
    socks[0].sendall(b"held")
    assert proxy.wait_accepted(4, WAIT)
    assert len(proxy_threads("fp-stop")) == 1 + 2 * 4
    assert proxy.stop(timeout=WAIT) == []
    assert proxy_threads("fp-stop") == []
    for sock in socks:
        sock.settimeout(WAIT)
        assert recv_until_eof(sock) == b""
        sock.close()
    assert proxy.stop() == []  # idempotent
    with pytest.raises(RuntimeError):
        proxy.start()


def test_many_cycles_leave_no_threads(echo):
    for n in range(20):
        with FaultProxy(echo.port, name=f"fp-cycle{n}") as proxy:
            with connect(proxy) as sock:
                sock.sendall(b"c")
                assert recv_exactly(sock, 1) == b"c"
                if n % 2:
                    proxy.drop()
    # The echo server's threads for closed connections end on their own; only the proxy's must be gone now.
    assert [t for t in threading.enumerate() if t.name.startswith("fp-cycle")] == []
    assert echo.wait(lambda: all(echo.eof) and len(echo.eof) == 20)
