"""Pytest fixtures for testing against a real CSMS on loopback.

In a ``conftest.py``::

    pytest_plugins = ["ocpp_sync.pytest_plugin"]

then ask for ``ocpp_csms`` (a running CSMS that accepts every station and
answers the common requests), ``ocpp_charge_point`` (a connected ChargePoint)
and ``ocpp_station`` (the CSMS's side of it). ``ocpp_version`` decides the OCPP
version: every test runs once per version unless ``ocpp_version`` is
parametrized or overridden. Register your own handlers on ``ocpp_csms`` with
``ocpp_csms.on(...)``; they replace the default ones.

The conformance kit runs as one pytest item per case id: parametrize a test
with :func:`conformance_ids` and call :func:`check_conformance` in it
(docs/conformance.md).

A module of its own so that :mod:`ocpp_sync.testing`, which notebooks use
after a plain ``pip install``, does not need pytest. It is not a ``pytest11``
entry point on purpose: that would load these fixtures into every pytest run
of every project that has ocpp_sync installed, wanted or not.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from ocpp_sync.chargepoint.chargepoint import ChargePoint
from ocpp_sync.conformance import Config, CsmsUnderTest, StationUnderTest, Verdict, no_prompt, run, select
from ocpp_sync.conformance.case import INCONCLUSIVE, PASSED
from ocpp_sync.conformance.prompts import Prompt
from ocpp_sync.csms.csms import CSMS, Station
from ocpp_sync.protocol.versions import VERSIONS
from ocpp_sync.testing import connected_charge_point, running_csms

__all__ = ["ocpp_version", "ocpp_csms", "ocpp_charge_point", "ocpp_station", "conformance_ids",
           "check_conformance"]


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


def conformance_ids(cases: str | Iterable[str] = "*", *, role: str, version: str) -> list[Any]:
    """``pytest.mark.parametrize("case_id", conformance_ids(...))``: one item per case, named by its id."""
    return [pytest.param(case.id, id=case.id) for case in select(cases, role=role, version=version)]


def check_conformance(case_id: str, target: CsmsUnderTest | StationUnderTest, *,
                      config: Config | None = None, prompt: Prompt = no_prompt,
                      on_ready: Callable[[int | None], Any] | None = None) -> Verdict:
    """Play one case against ``target``: the test fails with the verdict (step, frame, field),
    or is skipped when the case is inconclusive; returns the passed verdict.

    Each call opens its own session: for a station under test, the kit listens
    anew and ``on_ready(port)`` must get the station to connect.
    """
    report = run(target, [case_id], config=config, prompt=prompt, on_ready=on_ready)
    if not report.verdicts:
        pytest.skip(f"{case_id} does not apply to a {target.role} of OCPP {target.version}")
    verdict = report.verdicts[0]
    if verdict.outcome == INCONCLUSIVE:
        pytest.skip(verdict.describe())
    if verdict.outcome != PASSED:
        pytest.fail(verdict.describe(), pytrace=False)
    return verdict
