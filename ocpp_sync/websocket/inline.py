"""Websocket frames read by the thread that calls receive(), no thread of its own.

Two users: the standalone CSMS's connections (server mode), and the charge point's
once websocket-client has opened it (client mode: see client.py). The modes differ
only where RFC 6455 makes them: a client's frames are masked, a server's are not.

wsproto parses what arrives (unmasking, fragments, UTF-8, control frame rules);
only the one thread holding the read lock ever touches it. The frames that nearly
always come (one whole text frame per message, pings) are parsed here until
anything else comes: wsproto's general parser was the largest cost left per
message once simple-websocket's thread was gone, and websocket-client's frame
reader (a select, two or three reads and an ABNF object per frame) was as costly
on the charge point's side. The frames we send are serialised here too (a header,
the mask key in client mode, the payload), and keeping wsproto's state out of the
send path means writers on other threads share nothing with the reader but the
socket and the write lock.
"""
from __future__ import annotations

import collections
import logging
import os
import socket
import ssl
import struct
import threading
import time
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from ocpp_sync.errors import ConnectionClosed
from ocpp_sync.protocol.retry import Keepalive
from ocpp_sync.scheduling.turnstile import Turnstile
from ocpp_sync.websocket.base import CLOSE_TIMEOUT, WRITE_TIMEOUT, TransportBase, abort_socket
from ocpp_sync.websocket.poller import Poller

__all__ = ["InlineTransport"]

log = logging.getLogger("ocpp_sync.transport")

RECEIVE_BYTES = 64 * 1024
# A send that never blocks, where the platform has the flag (Windows has not: there a
# send waits for room in the kernel's buffer, which poll said there was).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


class _MaskKeys:
    """Masking keys cut from os.urandom 4 KiB at a time: one system call (which also lets
    the GIL go) per 1,024 frames instead of one per frame. A forked child starts afresh,
    so it never repeats its parent's keys."""

    _BATCH = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._next = 0
        os.register_at_fork(after_in_child=self._forget)

    def take(self) -> bytes:
        with self._lock:
            start = self._next
            if start >= len(self._pool):
                self._pool, start = os.urandom(self._BATCH), 0
            self._next = start + 4
            return self._pool[start:start + 4]

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._next = b"", 0


_MASK_KEYS = _MaskKeys()


def _frame(opcode: int, payload: bytes, masked: bool = False) -> bytes:
    """One final frame: unmasked from a server, masked from a client.

    A client masks every frame with a fresh key from a strong random source (RFC 6455
    5.3: a predictable key would let a script steer the bytes an intermediary sees).
    """
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = bytes((0x80 | opcode, mask_bit | size))
    elif size < 0x10000:
        head = struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, size)
    if not masked:
        return head + payload
    key = _MASK_KEYS.take()
    return head + key + _apply_mask(payload, key)


def _close_frame(code: int, reason: str = "", masked: bool = False) -> bytes:
    if code in (1005, 1006, 1015):   # reserved for "no code" / "no close frame": never sent
        return _frame(_CLOSE, b"", masked)
    data = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return _frame(_CLOSE, struct.pack("!H", code) + data, masked)


def _apply_mask(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``mask``: masks and unmasks alike."""
    size = len(payload)
    key = (mask * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little")


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class InlineTransport(TransportBase):
    """Transport over an upgraded socket, read inline by the thread in receive().

    ``client`` says which end of the websocket this is: a client masks what it sends
    and expects unmasked frames (anything else is a protocol error, 1002). A plain socket
    must be blocking: reads with a deadline wait in poll first, and writes go out
    without blocking (poll between tries) to give up on a peer that stopped reading
    after ``write_timeout`` seconds without progress. A TLS socket is made non-blocking
    here: poll sees the first byte of a record, and a blocking read would then wait for
    the rest, past any deadline; a non-blocking one goes back to poll instead.

    Locks: ``_read_lock`` is held by whichever thread reads the socket (receive(), or
    close() when nobody else reads), so close() knows when the fd can go; ``_write_lock``
    makes every frame one whole write; ``_state_lock`` guards the closing flags.

    ``turnstile``: the CSMS's turnstile (``_turnstile``); a write that would wait for
    the peer gives up the turn first, so a peer that stops reading holds up no one else.
    ``leftover``: bytes the handshake read past its end (frames sent right behind it),
    read before anything from the socket.
    """

    def __init__(self, sock: Any, subprotocol: str, remote_address: str, *,
                 client: bool = False, close_timeout: float = CLOSE_TIMEOUT,
                 keepalive: Keepalive | None = None,
                 max_message_size: int | None = None,
                 write_timeout: float = WRITE_TIMEOUT,
                 turnstile: Turnstile | None = None, leftover: bytes = b"") -> None:
        super().__init__(subprotocol, remote_address, close_timeout=close_timeout,
                         keepalive=keepalive, max_message_size=max_message_size)
        self.turnstile = turnstile
        self._client = client
        self._name = ("connection to " if client else "connection from ") + remote_address
        # The mask bit the peer's frames must carry, and where the payload of a short frame
        # starts (after the 4-byte mask key if there is one).
        self._peer_mask_bit, self._head = (0, 2) if client else (0x80, 6)
        self._sock = sock
        self._tls = isinstance(sock, ssl.SSLSocket)
        if self._tls:
            sock.setblocking(False)
        self._write_timeout = write_timeout
        self._write_poll = Poller(sock, write=True)
        self._proto = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
        self._poll = Poller(sock)
        self._reader_out_poll = Poller(sock, write=True)   # the reader's, when OpenSSL must write first
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._ready: collections.deque[str | bytes] = collections.deque()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._binary = False              # the message being assembled is binary
        self._closing = False             # our close frame went out (ours, or our answer)
        self._close_called = False
        self._gave_up = False             # the reader closed (1009, bad frames): receive() ends
        # A bad frame behind messages not yet handed out: (code, reason) of the close that
        # follows them, so that their answers go out before it.
        self._failure: tuple[int, str] | None = None
        self._finished = threading.Event()   # the peer's close came, or the stream ended
        self._fast = True                 # frames parsed here until wsproto is needed
        self._partial = bytearray()       # the start of a frame not yet complete (fast mode)
        self._need = 0                    # how long _partial must be before it is parsed again
        self._fast_limit = min(0xFFFF, self._max_size or 0xFFFF)
        self._fd_closed = False
        if leftover:
            self._feed(leftover)   # what came right behind the handshake, read before the socket

    # -- sending (any thread) --------------------------------------------------------------

    def send(self, text: str) -> None:
        data = _frame(_TEXT, text.encode("utf-8"), self._client)
        if not self._write_lock.acquire(blocking=False):
            self._step_out()   # another thread is writing to this peer: wait off the turn
            self._write_lock.acquire()
        try:
            if self._closing or self._finished.is_set():
                raise ConnectionClosed("connection is closed")
            try:
                self._write(data)
            except OSError as exc:
                # A frame may be half written: the stream is unusable, so end it and wake the reader.
                self._finished.set()
                abort_socket(self._sock)
                raise ConnectionClosed(f"send failed: {exc or type(exc).__name__}") from exc
        finally:
            self._write_lock.release()

    def _step_out(self) -> None:
        """Give up the CSMS's turn, if this thread holds it, before waiting on this one peer."""
        if self.turnstile is not None:
            self.turnstile.leave()

    def _write(self, data: bytes) -> None:
        """All of ``data``, the write lock held; a peer that stops reading fails the write after
        ``write_timeout`` seconds without progress instead of holding every writer forever."""
        if self._tls:
            self._write_tls(data)
            return
        try:
            sent = self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return   # the usual case: the kernel took it all at once
        self._step_out()
        rest = memoryview(data)[sent:]
        deadline = time.monotonic() + self._write_timeout
        while rest:
            millis = int((deadline - time.monotonic()) * 1000 + 0.999)
            if millis <= 0:
                raise TimeoutError(f"the peer read nothing for {self._write_timeout:g} s")
            if self._write_poll.wait(millis):
                try:
                    sent = self._sock.send(rest, _DONTWAIT)
                except BlockingIOError:
                    continue
                rest = rest[sent:]
                deadline = time.monotonic() + self._write_timeout

    def _write_tls(self, data: bytes) -> None:
        """The plain loop's bounds on the non-blocking SSL socket. A write that would block
        is retried with the same bytes, as OpenSSL requires (part of them may be in a
        record already); poll saying writable is progress: the retry gives the kernel
        more of that record."""
        rest, want_write = memoryview(data), True
        try:
            rest = rest[self._sock.send(rest):]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError) as exc:
            want_write = isinstance(exc, ssl.SSLWantWriteError)
        if not rest:
            return   # the usual case: the kernel took every record at once
        self._step_out()
        deadline = time.monotonic() + self._write_timeout
        while rest:
            millis = int((deadline - time.monotonic()) * 1000 + 0.999)
            if millis <= 0:
                raise TimeoutError(f"the peer read nothing for {self._write_timeout:g} s")
            if not want_write:
                # A renegotiation waits for the peer's records, which the reader takes in:
                # look again shortly, without counting it as progress.
                if self._finished.wait(min(millis, 10) / 1000):
                    raise ConnectionResetError("the stream ended in a renegotiation")
            elif self._write_poll.wait(millis):
                deadline = time.monotonic() + self._write_timeout
            else:
                continue
            try:
                rest = rest[self._sock.send(rest):]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError) as exc:
                want_write = isinstance(exc, ssl.SSLWantWriteError)

    def _send_control(self, data: bytes) -> bool:
        """A pong, ping or close frame from the reading thread; False if the stream broke."""
        try:
            with self._write_lock:
                self._write(data)
            return True
        except OSError:
            self._finished.set()
            abort_socket(self._sock)
            return False

    # -- reading (one thread at a time) -----------------------------------------------------

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._read_lock:
            while True:
                if self._ready:
                    return self._ready.popleft()
                failure = self._failure
                if failure is not None:
                    self._fail(*failure)
                if self._finished.is_set() or self._gave_up:
                    return None
                if self._pinging and not self._keep_alive():
                    return None
                wait_until = self._wake_at(deadline)
                if wait_until is not None and not self._readable(wait_until):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError("no message within the timeout")
                    continue
                self._read_some(wait_until)

    def _readable(self, deadline: float | None) -> bool:
        """Wait until the socket has data or ``deadline`` (None: no limit); poll, so that a
        plain socket stays blocking for writers."""
        if self._tls and self._sock.pending():
            return True   # decrypted bytes already in the SSL object: poll cannot see them
        # A timeout of 0 still polls, so data already here is returned rather than a timeout.
        millis = -1 if deadline is None else \
            max(0, int((deadline - time.monotonic()) * 1000 + 0.999))
        return self._poll.wait(millis)

    def _read_some(self, deadline: float | None) -> None:
        """One read, its frames handled. A TLS record that has come only in part (OpenSSL
        keeps it; the end of the stream is an empty read, never that) is waited for in
        poll until ``deadline`` at most, so the caller's deadlines and pings still hold."""
        while True:
            try:
                data = self._sock.recv(RECEIVE_BYTES)
                break
            except ssl.SSLWantReadError:
                if not self._readable(deadline):
                    return
            except ssl.SSLWantWriteError:
                # OpenSSL must write before it reads on (a renegotiation, a key update's
                # answer): wait for room to write, not for input, or this would spin.
                millis = -1 if deadline is None else \
                    max(0, int((deadline - time.monotonic()) * 1000 + 0.999))
                if not self._reader_out_poll.wait(millis):
                    return
            except OSError as exc:
                if not (self._closing or self._finished.is_set()):
                    log.warning("%s lost: %s", self._name, exc or type(exc).__name__)
                self._finished.set()
                return
        self._feed(data)

    def _feed(self, data: bytes | None) -> None:
        """Bytes read (empty at the end of the stream): fast frames here, the rest to wsproto."""
        if not data:
            data = None   # end of stream: wsproto reports it as close 1006
        else:
            if self._pinging:
                self._keepalive.seen()
            if self._fast:
                data = self._fast_frames(data)
                if data is None:
                    return
        if self._proto.state in (ConnectionState.CLOSED, ConnectionState.REMOTE_CLOSING):
            self._finished.set()
            return
        self._proto.receive_data(data)
        for event in self._proto.events():
            if isinstance(event, TextMessage):
                self._on_data(event.data, event.message_finished)
            elif isinstance(event, BytesMessage):
                self._on_data(bytes(event.data), event.message_finished)
            elif isinstance(event, Ping):
                if not self._closing:
                    self._send_control(_frame(_PONG, bytes(event.payload), self._client))
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return

    def _fast_frames(self, data: bytes) -> bytes | None:
        """Handle the frames that nearly always come (whole, final text up to 64 KiB, masked
        if the peer is a client; pings, pongs) without wsproto; None when all of ``data``
        was used up.

        At the first other frame (fragment, binary, close, anything malformed or large)
        wsproto takes over the stream for good, from that frame's first byte on, so its
        parser always starts at a frame boundary and reports every error itself.
        """
        if self._partial:
            # Appended until the frame is whole: a frame trickling in byte by byte costs
            # linear time, not a copy of everything so far at each read.
            self._partial += data
            if len(self._partial) < self._need:
                return None
            buf = bytes(self._partial)
        else:
            buf = data
        pos, end, need = 0, len(buf), 2
        mask_bit, head = self._peer_mask_bit, self._head
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            opcode, size, start = first & 0x0F, second & 0x7F, pos + head
            if size == 127:
                return self._hand_over(buf, pos)           # over 64 KiB
            if size == 126:
                if end - pos < 4:
                    need = 4
                    break
                size, start = (buf[pos + 2] << 8) | buf[pos + 3], start + 2
                if size < 126:
                    return self._hand_over(buf, pos)       # not the shortest length encoding
            if (first & 0xF0) != 0x80 or (second & 0x80) != mask_bit or size > self._fast_limit or \
                    (opcode != _TEXT and (opcode not in (_PING, _PONG) or size > 125)):
                return self._hand_over(buf, pos)
            if end < start + size:
                need = start + size - pos
                break
            payload = _apply_mask(buf[start:start + size], buf[start - 4:start]) if mask_bit \
                else buf[start:start + size]
            if opcode == _TEXT:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    return self._hand_over(buf, pos)
                if not self._closing:
                    self._ready.append(text)
            elif opcode == _PING and not self._closing:
                self._send_control(_frame(_PONG, payload, self._client))
            pos = start + size
        self._partial = bytearray(buf[pos:]) if pos < end else bytearray()
        self._need = need
        return None

    def _hand_over(self, buf: bytes, pos: int) -> bytes:
        self._fast = False
        self._partial = bytearray()
        return buf[pos:]

    def _on_data(self, data: str | bytes, finished: bool) -> None:
        if self._closing:
            return   # after a close frame went out, messages are dropped, not assembled
        if isinstance(data, str):
            self._size += _utf8_len(data)
        else:
            self._size += len(data)
            self._binary = True
        if self._over_limit(self._size):
            self._parts = []
            self._give_up(1009, "message too big")
            return
        self._parts.append(data)
        if not finished:
            return
        parts = self._parts
        if len(parts) == 1:
            self._ready.append(parts[0])
        elif self._binary:
            self._ready.append(b"".join(p for p in parts if isinstance(p, bytes)))
        else:
            self._ready.append("".join(p for p in parts if isinstance(p, str)))
        self._parts = []
        self._size = 0
        self._binary = False

    def _on_close(self, event: CloseConnection) -> None:
        state = self._proto.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer's close frame: answer it once, unless ours already went out.
            self.peer_close_code = int(event.code)
            with self._state_lock:
                answer = not self._closing
                self._closing = True
            if answer:
                log.info("%s closed the connection (%s)", self.remote_address, event.code)
                self._send_control(_close_frame(int(event.code), masked=self._client))
            self._finished.set()
        elif state is ConnectionState.CLOSED:
            # End of stream without a close frame.
            if not (self._closing or self._finished.is_set()):
                log.warning("%s lost: closed without a close frame", self._name)
            self._finished.set()
        else:
            # wsproto could not parse what came (its code says why: 1002, 1007...). Messages
            # that came before the bad frame are handed out first, the close sent after them.
            log.warning("closing the %s (%s): %s", self._name, event.code, event.reason)
            if self._ready and not self._closing:
                self._failure = (int(event.code), "protocol error")
            else:
                self._fail(int(event.code), "protocol error")

    def _fail(self, code: int, reason: str) -> None:
        self._failure = None
        self._give_up(code, reason)
        self._finished.set()   # nothing after a bad frame can be parsed

    def _give_up(self, code: int, reason: str) -> None:
        """Close from the reader's side: receive() ends; close() then waits for the peer's answer."""
        self._gave_up = True
        with self._state_lock:
            send = not self._closing
            self._closing = True
        if send:
            self._send_control(_close_frame(code, reason, self._client))

    def _send_ping(self) -> bool:
        return self._closing or self._send_control(_frame(_PING, b"", self._client))

    # -- closing (any thread) ---------------------------------------------------------------

    def _begin_close(self, code: int, reason: str) -> bool:
        """Send our close frame; False if close() had already been called."""
        with self._state_lock:
            if self._close_called:
                return False
            self._close_called = True
            send = not self._closing
            self._closing = True
            failure, self._failure = self._failure, None
        if failure is not None:
            # Closed before the messages ahead of a bad frame were read: the close is the failure's.
            code, reason = failure
            self._gave_up = True
        if send and not self._finished.is_set():
            if self._write_lock.acquire(timeout=self._close_timeout):
                try:
                    self._write(_close_frame(code, reason, self._client))
                except OSError:
                    self._finished.set()
                finally:
                    self._write_lock.release()
            else:
                # A write is stuck on a peer that does not read: no clean close is possible.
                self._abort()
        if failure is not None:
            self._finished.set()   # nothing after the bad frame is read
        return True

    def _finish_close(self) -> None:
        """Wait (bounded) for the peer's close frame, then drop the connection and the fd."""
        deadline = time.monotonic() + self._close_timeout
        if self._read_lock.acquire(blocking=False):
            # Nobody reads: read the peer's answer here, each read bounded by the deadline
            # (the rest of a TLS record that came in part is waited for in poll, no longer).
            try:
                while not self._finished.is_set() and self._readable(deadline):
                    self._read_some(deadline)
            finally:
                self._read_lock.release()
        else:
            self._finished.wait(self._close_timeout)
        if not self._finished.is_set():
            self._abort()
        # A reader woken by the shutdown leaves receive() promptly; the fd goes once it has,
        # and once no write is in progress, so that no thread uses a reused fd number.
        if not self._read_lock.acquire(timeout=self._close_timeout):
            log.warning("%s: a reader did not leave; its socket stays open", self._name)
            return
        try:
            with self._state_lock:
                first = not self._fd_closed
                self._fd_closed = True
            if first:
                if self._write_lock.acquire(timeout=self._close_timeout):
                    self._write_lock.release()
                self._sock.close()
                log.info("%s closed", self._name)
        finally:
            self._read_lock.release()

    def _abort(self) -> None:
        self._finished.set()
        abort_socket(self._sock)
