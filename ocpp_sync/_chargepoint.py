"""The charge point side: a blocking client for one connection to a CSMS."""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from ._codec import from_payload, message_info, to_payload, version_module
from ._connection import CS, Connection
from ._errors import ConnectionClosed
from ._transports.client import connect as open_websocket

__all__ = ["ChargePoint", "check_handler_class", "call_with_dict"]

F = TypeVar("F", bound=Callable[..., Any])

VERSIONS = ("1.6", "2.0.1", "2.1")


def check_version(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"unsupported OCPP version {version!r}; use one of {VERSIONS}")
    return version


def check_handler_class(request_cls: type, versions: tuple[str, ...], incoming: str) -> None:
    """Refuse at registration what could never be called, instead of silently never calling it."""
    try:
        info = message_info(request_cls)
    except TypeError:
        raise TypeError(f"{request_cls!r} is not an OCPP message class") from None
    if not info.is_request:
        raise ValueError(f"{request_cls.__name__} is a response; register a request class")
    if info.version not in versions:
        raise ValueError(f"{request_cls.__name__} is from OCPP {info.version}, "
                         f"not one of {', '.join(versions)}")
    module = version_module(info.version)
    if info.action not in getattr(module, incoming):
        raise ValueError(f"{info.action} is never sent to this side in OCPP {info.version}")


def call_with_dict(connection: Connection, action: str, payload: Mapping[str, Any],
                   timeout: float | None) -> dict[str, Any] | None:
    """The dict-in, dict-out call, validated both ways through the message classes."""
    module = version_module(connection.version)
    try:
        request_cls = module.REQUESTS[action]
    except KeyError:
        raise ValueError(f"{action!r} is not an OCPP {connection.version} action") from None
    response = connection.send(from_payload(request_cls, dict(payload)), timeout)
    return None if response is None else to_payload(response)


class ChargePoint:
    """A charge point's connection to its CSMS, with blocking calls.

    Handlers for the CSMS's calls run one at a time in this connection's
    dispatcher thread and may call :meth:`send` themselves.
    """

    def __init__(self, id: str, url: str, version: str = "1.6", timeout: float = 30.0,
                 headers: Mapping[str, str] | None = None, lenient: bool = False, *,
                 connect_timeout: float = 10.0, sslopt: dict | None = None) -> None:
        if not id:
            raise ValueError("a charge point needs a non-empty id")
        self.id = id
        self.url = url
        self.version = check_version(version)
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.lenient = lenient
        self.connect_timeout = connect_timeout
        self.sslopt = sslopt
        self._handlers: dict[type, Callable[[Any], Any]] = {}
        self._lock = threading.Lock()  # guards _connection
        self._connection: Connection | None = None

    def on(self, request_cls: type[Any]) -> Callable[[F], F]:
        """Decorator: answer the CSMS's ``request_cls`` calls with the decorated function."""
        check_handler_class(request_cls, (self.version,), "CSMS_TO_CS")

        def register(handler: F) -> F:
            self._handlers[request_cls] = handler
            return handler

        return register

    @property
    def connected(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.closed

    def connect(self) -> None:
        """Open the websocket; returns once it is open (raises HandshakeError if it cannot)."""
        with self._lock:
            if self._connection is not None and not self._connection.closed:
                raise RuntimeError(f"{self.id} is already connected")
            transport = open_websocket(self.url, self.id, subprotocols=[f"ocpp{self.version}"],
                                       headers=self.headers, timeout=self.connect_timeout,
                                       sslopt=self.sslopt)
            self._connection = Connection(transport, name=f"ocpp-{self.id}", version=self.version,
                                          role=CS, find_handler=self._handlers.get,
                                          timeout=self.timeout, lenient=self.lenient)
            self._connection.start()

    def _live(self) -> Connection:
        connection = self._connection
        if connection is None:
            raise ConnectionClosed(f"{self.id} is not connected")
        return connection

    def send(self, message: Any, timeout: float | None = None) -> Any:
        """Send a request and block for the response object.

        Raises CallError, CallTimeout, ConnectionClosed, or ValidationError
        (before sending) for an invalid request. ``timeout`` covers waiting for
        our turn as well as for the answer.
        """
        return self._live().send(message, timeout)

    def send_async(self, message: Any, timeout: float | None = None) -> Future:
        """Like :meth:`send`, but returns a Future at once."""
        return self._live().send_async(message, timeout)

    def call(self, action: str, payload: Mapping[str, Any],
             timeout: float | None = None) -> dict[str, Any] | None:
        """Send a wire-format payload and get the wire-format response, both validated."""
        return call_with_dict(self._live(), action, payload, timeout)

    def close(self) -> None:
        """Close the connection and stop its threads; idempotent."""
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.close()

    def __enter__(self) -> ChargePoint:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<ChargePoint {self.id!r} OCPP {self.version} {self.url} {state}>"
