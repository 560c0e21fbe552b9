"""Shared fixtures for the connection and API tests: real loopback sockets only."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from support.raw import VERSIONS, WAIT, RawClient, RawPeer, RawServer

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.protocol.versions import version_module


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """The test's threads must be gone once it and its fixtures end.

    Request it first (``pytest.mark.usefixtures``) so its check runs after
    the other fixtures have stopped their servers.
    """
    before = set(threading.enumerate())
    yield
    new = [t for t in threading.enumerate() if t not in before]
    for thread in new:
        thread.join(WAIT)
    alive = [t.name for t in new if t.is_alive()]
    assert not alive, f"threads left running: {alive}"


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def m(version: str) -> Any:
    """The message module of the test's version (v16, v201 or v21)."""
    return version_module(version)


@pytest.fixture
def csms(version: str) -> Iterator[CSMS]:
    server = CSMS(versions=(version,), timeout=WAIT)
    server.start("127.0.0.1", 0)
    yield server
    server.stop()


@pytest.fixture
def raw_server(version: str) -> Iterator[RawServer]:
    server = RawServer(version)
    yield server
    server.stop()


@pytest.fixture
def linked(raw_server: RawServer, version: str) -> Iterator[tuple[Any, RawPeer]]:
    """Our ChargePoint connected to a raw server: (charge point, the server's end)."""
    cp = ChargePoint("CP_1", raw_server.url, version=version, timeout=WAIT)
    cp.connect()
    peer = raw_server.accept()
    yield cp, peer
    # The charge point's close waits for the server's answer to its close frame: read the
    # server's end meanwhile, or every test would wait out the close timeout.
    reader = threading.Thread(target=peer.read_to_the_end, name="test-raw-reader", daemon=True)
    reader.start()
    cp.close()
    reader.join(WAIT)


@pytest.fixture
def raw_client(csms: CSMS, version: str) -> Iterator[RawClient]:
    client = RawClient(csms.port, "RAW_1", version)
    yield client
    client.close()
