"""Context managers for testing against a real CSMS on loopback, with or without pytest.

:func:`running_csms` and :func:`connected_charge_point` serve a notebook or a
lab script, where pytest is usually not installed: nothing here imports it.
The pytest fixtures built on them live in :mod:`ocpp_sync.pytest_plugin`.
Everything here uses real sockets, so whatever a test sees is what a station
would see.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.csms.csms import CSMS, Station
from ocpp_sync.protocol.versions import VERSIONS
from ocpp_sync.sim.central import CentralSystem

__all__ = [
    "VERSIONS",
    "running_csms",
    "connected_charge_point",
    "csms_url",
]

# `pytest_plugins = ["ocpp_sync.testing"]`, the name this module's fixtures had before
# they moved, still works: pytest loads the plugins a plugin module names here, and
# everything else ignores this string.
pytest_plugins = ["ocpp_sync.pytest_plugin"]

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

