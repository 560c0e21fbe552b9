"""Pytest fixtures for testing against a real CSMS on loopback.

In a ``conftest.py``::

    pytest_plugins = ["ocpp_sync.pytest_plugin"]

then ask for ``ocpp_csms`` (a running CSMS that accepts every station and
answers the common requests), ``ocpp_charge_point`` (a connected ChargePoint)
and ``ocpp_station`` (the CSMS's side of it). ``ocpp_version`` decides the OCPP
version: every test runs once per version unless ``ocpp_version`` is
parametrized or overridden. Register your own handlers on ``ocpp_csms`` with
``ocpp_csms.on(...)``; they replace the default ones.

A module of its own so that :mod:`ocpp_sync.testing`, which notebooks use
after a plain ``pip install``, does not need pytest. It is not a ``pytest11``
entry point on purpose: that would load these fixtures into every pytest run
of every project that has ocpp_sync installed, wanted or not.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.csms.csms import CSMS, Station
from ocpp_sync.protocol.versions import VERSIONS
from ocpp_sync.testing import connected_charge_point, running_csms

__all__ = ["ocpp_version", "ocpp_csms", "ocpp_charge_point", "ocpp_station"]


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
