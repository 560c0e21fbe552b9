"""Pytest fixtures and context managers for testing against a real CSMS on loopback.

In a ``conftest.py``::

    pytest_plugins = ["ocpp_sync.testing"]

then ask for ``ocpp_csms`` (a running CSMS that accepts every station and
answers the common requests), ``ocpp_charge_point`` (a connected ChargePoint)
and ``ocpp_station`` (the CSMS's side of it). ``ocpp_version`` decides the OCPP
version: every test runs once per version unless ``ocpp_version`` is
parametrized or overridden. Register your own handlers on ``ocpp_csms`` with
``ocpp_csms.on(...)``; they replace the default ones.

The context managers :func:`running_csms` and :func:`connected_charge_point`
do the same outside pytest (a notebook, a lab script). Everything here uses
real sockets, so whatever a test sees is what a station would see.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.csms.csms import CSMS, Station
from ocpp_sync.protocol.versions import VERSIONS
from ocpp_sync.sim.central import CentralSystem

__all__ = [
    "VERSIONS",
    "running_csms",
    "connected_charge_point",
    "csms_url",
    "ocpp_version",
    "ocpp_csms",
    "ocpp_charge_point",
    "ocpp_station",
]

#: Seconds every call and wait made by these helpers may take: loopback answers at once.
TIMEOUT = 10.0

_ids = itertools.count(1)


def csms_url(csms: CSMS, path: str = "/ocpp") -> str:
    """The ws:// URL a charge point uses to reach a CSMS started on loopback."""
    return f"ws://127.0.0.1:{csms.port}{path}"


@contextmanager
def running_csms(versions: Sequence[str] = VERSIONS, *, accept_all: bool = True,
                 timeout: float = TIMEOUT, **options: Any) -> Iterator[CSMS]:
    """A CSMS listening on a free loopback port, stopped on exit.

    With ``accept_all`` it answers every station request the way a permissive
    back office would (boot accepted, id tags accepted, transactions numbered),
    so a test only registers the handlers it is about. ``options`` go to CSMS().
    """
    csms = CSMS(versions=versions, timeout=timeout, **options)
    if accept_all:
        CentralSystem(heartbeat_interval=300).install(csms)
    csms.start("127.0.0.1", 0)
    try:
        yield csms
    finally:
        csms.stop()


@contextmanager
def connected_charge_point(csms: CSMS, version: str, station_id: str | None = None, *,
                           timeout: float = TIMEOUT,
                           **options: Any) -> Iterator[tuple[ChargePoint, Station]]:
    """A ChargePoint connected to ``csms`` and the CSMS's Station for it, closed on exit.

    The charge point is connected but has not booted: the test decides what it
    sends first. Register its handlers (``cp.on``) before the CSMS calls it.
    ``options`` go to ChargePoint(); reconnecting is off unless asked for.
    """
    station_id = station_id or f"TEST_CP_{next(_ids)}"
    options.setdefault("reconnect", False)
    cp = ChargePoint(station_id, csms_url(csms), version=version, timeout=timeout, **options)
    cp.connect()
    try:
        yield cp, csms.wait_for_station(station_id, timeout=timeout)
    finally:
        cp.close()


@pytest.fixture(params=VERSIONS)
def ocpp_version(request: pytest.FixtureRequest) -> str:
    """The OCPP version of the test; parametrize ``ocpp_version`` to pick fewer."""
    return str(request.param)


@pytest.fixture
def ocpp_csms(ocpp_version: str) -> Iterator[CSMS]:
    """A running CSMS on loopback for ``ocpp_version``, answering the common requests."""
    with running_csms((ocpp_version,)) as csms:
        yield csms


@pytest.fixture
def _ocpp_connection(ocpp_csms: CSMS, ocpp_version: str,
                     request: pytest.FixtureRequest) -> Iterator[tuple[ChargePoint, Station]]:
    station_id = re.sub(r"[^A-Za-z0-9_.-]", "_", f"TEST_{request.node.name}")[:48]
    with connected_charge_point(ocpp_csms, ocpp_version, station_id) as pair:
        yield pair


@pytest.fixture
def ocpp_charge_point(_ocpp_connection: tuple[ChargePoint, Station]) -> ChargePoint:
    """A ChargePoint connected to ``ocpp_csms`` (not booted yet)."""
    return _ocpp_connection[0]


@pytest.fixture
def ocpp_station(_ocpp_connection: tuple[ChargePoint, Station]) -> Station:
    """The CSMS's side of ``ocpp_charge_point``: call it, ``expect`` its requests."""
    return _ocpp_connection[1]
