"""ocpp_sync.testing and its pytest fixtures (ocpp_sync.pytest_plugin), used the way a user would."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync.protocol.versions import version_module

pytest_plugins = ["ocpp_sync.pytest_plugin"]  # as a user's conftest.py would

WAIT = 10.0


def boot_request(m: Any) -> Any:
    if m.VERSION == "1.6":
        return m.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1")
    return m.BootNotificationRequest(reason="PowerUp", charging_station=m.ChargingStationType(
        vendor_name="ACME", model="X1"))


@pytest.mark.usefixtures("no_leftover_threads")
def test_a_fresh_charge_point_boots_against_the_default_csms(
        ocpp_version: str, ocpp_charge_point: ocpp_sync.ChargePoint,
        ocpp_station: ocpp_sync.Station) -> None:
    m = version_module(ocpp_version)
    assert ocpp_charge_point.version == ocpp_station.version == ocpp_version
    response = ocpp_charge_point.send(boot_request(m))
    assert response.status == "Accepted"
    assert isinstance(ocpp_station.expect(m.BootNotificationRequest, timeout=WAIT),
                      m.BootNotificationRequest)


@pytest.mark.parametrize("ocpp_version", ["2.0.1"])
def test_own_handlers_replace_the_default_ones(ocpp_csms: ocpp_sync.CSMS,
                                               ocpp_charge_point: ocpp_sync.ChargePoint) -> None:
    m = version_module("2.0.1")

    @ocpp_csms.on(m.BootNotificationRequest)
    def boot(station: Any, request: Any) -> Any:
        return m.BootNotificationResponse(current_time="2026-01-01T00:00:00Z", interval=5,
                                          status="Rejected")

    assert ocpp_charge_point.send(boot_request(m)).status == "Rejected"


@pytest.mark.parametrize("ocpp_version", ["1.6"])
def test_the_csms_side_calls_the_charge_point(ocpp_charge_point: ocpp_sync.ChargePoint,
                                              ocpp_station: ocpp_sync.Station) -> None:
    m = version_module("1.6")
    ocpp_charge_point.on(m.ResetRequest)(lambda request: m.ResetResponse(status="Accepted"))
    assert ocpp_station.send(m.ResetRequest(type="Soft")).status == "Accepted"
    assert ocpp_charge_point.expect(m.ResetRequest, timeout=WAIT).type == "Soft"


def test_context_managers_leave_no_threads_behind() -> None:
    from ocpp_sync.testing import connected_charge_point, csms_url, running_csms

    before = set(threading.enumerate())
    with running_csms(("1.6", "2.0.1")) as csms:
        assert csms_url(csms).startswith("ws://127.0.0.1:")
        for version in ("1.6", "2.0.1"):
            with connected_charge_point(csms, version) as (cp, station):
                assert station.id == cp.id and station.version == version
                assert cp.send(boot_request(version_module(version))).status == "Accepted"
    new = [t for t in threading.enumerate() if t not in before]
    for thread in new:
        thread.join(WAIT)
    assert not [t.name for t in new if t.is_alive()]


def test_the_context_managers_work_where_pytest_is_not_installed() -> None:
    """A notebook after `pip install .` has no pytest; the guides import ocpp_sync.testing there."""
    script = textwrap.dedent("""
        import sys
        sys.modules["pytest"] = None  # any `import pytest` now raises ModuleNotFoundError
        from ocpp_sync.testing import connected_charge_point, running_csms
        with running_csms(("1.6",)) as csms, connected_charge_point(csms, "1.6") as (cp, station):
            assert station.id == cp.id
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_former_plugin_name_still_gives_the_fixtures(tmp_path: Path) -> None:
    """Conftests written before the fixtures moved name ocpp_sync.testing as the plugin."""
    (tmp_path / "test_old_name.py").write_text(textwrap.dedent("""
        import pytest
        pytest_plugins = ["ocpp_sync.testing"]

        @pytest.mark.parametrize("ocpp_version", ["2.0.1"])
        def test_it(ocpp_csms, ocpp_charge_point, ocpp_station):
            assert ocpp_station.id == ocpp_charge_point.id
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
