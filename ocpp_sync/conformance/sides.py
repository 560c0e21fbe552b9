"""The two roles the kit plays: a station for a CSMS under test, the CSMS for a station under test.

Targets say where the peer under test is; each opens a session for a run,
which gives every case its :class:`~ocpp_sync.conformance.context.Side`.
"""
from __future__ import annotations

import contextlib
import queue
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.conformance.case import CSMS_ROLE, STATION_ROLE
from ocpp_sync.conformance.config import Config
from ocpp_sync.conformance.context import Answer, Peer
from ocpp_sync.csms.csms import CSMS, Station
from ocpp_sync.errors import CaseFailed
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.versions import check_version, version_module
from ocpp_sync.runtime.history import History
from ocpp_sync.security import client_ssl_context
from ocpp_sync.sim.central import CentralSystem

__all__ = ["CsmsUnderTest", "StationUnderTest", "KitStation", "KitCentral"]

# The kit keeps every frame of a run for the report, within these bounds.
_HISTORY_SIZE = 20_000
_HISTORY_BYTES = 16 << 20


@dataclass(frozen=True)
class CsmsUnderTest:
    """A CSMS to certify: the kit connects to ``url`` as the station ``station_id``.

    Args:
        url: The CSMS's websocket URL without the station id (``ws://host:9000/ocpp``).
        station_id: The id the kit's station connects with (one the CSMS knows).
        version: The OCPP version spoken.
        password: Security profiles 1 and 2: the station's Basic auth password.
        ca_file: Security profile 2: a PEM file of the CA that signed the CSMS's certificate.
        ssl_context: Or a complete client context (profile 3, with the station's certificate).
    """

    url: str
    station_id: str
    version: str = "2.0.1"
    password: str | None = None
    ca_file: str | None = None
    ssl_context: ssl.SSLContext | None = None
    role = CSMS_ROLE

    def __post_init__(self) -> None:
        check_version(self.version)
        if self.ca_file is not None and self.ssl_context is not None:
            raise ValueError("give ca_file or ssl_context, not both")

    @contextlib.contextmanager
    def session(self, config: Config) -> Iterator[Any]:
        """A fresh kit station per case: ``session.side()`` is called once per case."""
        context = self.ssl_context
        if context is None and self.ca_file is not None:
            context = client_ssl_context(cafile=self.ca_file)
        yield _StationSession(self, config, context)


class _StationSession:
    def __init__(self, target: CsmsUnderTest, config: Config, context: ssl.SSLContext | None) -> None:
        self.target, self.config, self.context = target, config, context

    def side(self) -> KitStation:
        return KitStation(self.target, self.config, self.context)


class KitStation:
    """The kit as a station: one ChargePoint per case, connected on first use, closed after."""

    def __init__(self, target: CsmsUnderTest, config: Config, context: ssl.SSLContext | None) -> None:
        self.target = target
        self.config = config
        self.m = version_module(target.version)
        self.cp = self._charge_point(context)
        self._context = context
        self._old: list[ChargePoint] = []
        self._answers: dict[str, Answer] = {}

    def _charge_point(self, context: ssl.SSLContext | None) -> ChargePoint:
        return ChargePoint(self.target.station_id, self.target.url, version=self.target.version,
                           timeout=self.config.step_timeout, reconnect=False,
                           password=self.target.password, ssl_context=context,
                           connect_timeout=self.config.step_timeout, history_size=_HISTORY_SIZE,
                           history_bytes=_HISTORY_BYTES)

    def peer(self, timeout: float) -> Peer:
        if not self.cp.connected:
            self.cp.connect()
        return self.cp

    def reconnected(self, timeout: float) -> Peer:
        """The kit station "reboots": a new connection, its handlers carried over."""
        old, self.cp = self.cp, self._charge_point(self._context)
        old.close()
        self._old.append(old)
        for action, answer in self._answers.items():
            self.answer(action, answer)
        return self.peer(timeout)

    def newer(self) -> Peer | None:
        """A CSMS under test never opens a connection to the kit."""
        return None

    def answer(self, action: str, answer: Answer) -> None:
        self._answers[action] = answer
        response_cls = self.m.RESPONSES[action]

        def handler(request: Any) -> Any:
            return from_payload(response_cls, answer(to_payload(request)))
        self.cp.on(self.m.REQUESTS[action])(handler)

    def histories(self) -> list[History]:
        return [cp.history for cp in (*self._old, self.cp)]

    def close(self) -> None:
        self.cp.close()


@dataclass(frozen=True)
class StationUnderTest:
    """A station to certify: the kit listens as its CSMS and waits for it to connect.

    Args:
        station_id: The id the station connects with (any other id is refused).
        version: The OCPP version spoken.
        host: The address to listen on.
        port: The port to listen on (0 picks a free one; see the session's ``port``).
        ssl_context: A server context for ``wss://`` (security profiles 2 and 3).
    """

    station_id: str
    version: str = "2.0.1"
    host: str = "0.0.0.0"
    port: int = 9000
    ssl_context: ssl.SSLContext | None = None
    role = STATION_ROLE

    def __post_init__(self) -> None:
        check_version(self.version)

    @contextlib.contextmanager
    def session(self, config: Config) -> Iterator[Any]:
        """One CSMS for the whole run, which the station stays connected to across cases."""
        session = _CentralSession(self, config)
        try:
            yield session
        finally:
            session.csms.stop()


class _CentralSession:
    def __init__(self, target: StationUnderTest, config: Config) -> None:
        self.target, self.config = target, config
        self.connections: queue.Queue[Station] = queue.Queue()
        self.current: Station | None = None
        self.csms = CSMS(versions=(target.version,), timeout=config.step_timeout,
                         registration=False, ssl_context=target.ssl_context,
                         known_stations={target.station_id}, history_size=_HISTORY_SIZE,
                         history_bytes=_HISTORY_BYTES)
        self.csms.on_connect(self.connections.put)
        self.central = CentralSystem(heartbeat_interval=config.heartbeat_interval)
        self.central.install(self.csms)
        self.csms.start(target.host, target.port)

    @property
    def port(self) -> int:
        return self.csms.port

    def side(self) -> KitCentral:
        self.central = CentralSystem(heartbeat_interval=self.config.heartbeat_interval)
        self.central.install(self.csms)   # the previous case's own answers go
        return KitCentral(self)


class KitCentral:
    """The kit as the CSMS, for one case: the station's current connection, its answers."""

    def __init__(self, session: _CentralSession) -> None:
        self.session = session
        self.m = version_module(session.target.version)
        self._used: list[Station] = []

    def _newest(self, timeout: float | None) -> Station | None:
        session = self.session
        try:
            while True:
                session.current = session.connections.get(timeout=timeout) if timeout is not None \
                    else session.connections.get_nowait()
                timeout = None
        except queue.Empty:
            pass
        return session.current

    def _use(self, station: Station) -> Station:
        if station not in self._used:
            self._used.append(station)
        return station

    def peer(self, timeout: float) -> Peer:
        station = self._newest(None)
        if station is None or not station.connected:
            station = self._newest(max(timeout, self.session.config.connect_timeout)
                                   if station is None else timeout)
        if station is None or not station.connected:
            raise CaseFailed(f"the station {self.session.target.station_id!r} did not connect "
                             f"within {self.session.config.connect_timeout:g} s")
        return self._use(station)

    def reconnected(self, timeout: float) -> Peer:
        before = self.session.current
        station = self._newest(None)
        if station is before or station is None:
            station = self._newest(timeout)
        if station is before or station is None:
            raise CaseFailed(f"the station did not connect again within {timeout:g} s")
        return self._use(station)

    def newer(self) -> Peer | None:
        before = self.session.current
        station = self._newest(None)
        return None if station is before or station is None else self._use(station)

    def answer(self, action: str, answer: Answer) -> None:
        response_cls = self.m.RESPONSES[action]

        def handler(station: Any, request: Any) -> Any:
            return from_payload(response_cls, answer(to_payload(request)))
        self.session.csms.on(self.m.REQUESTS[action])(handler)

    def histories(self) -> list[History]:
        return [station.history for station in self._used]

    def close(self) -> None:
        """The station stays connected for the next case."""
