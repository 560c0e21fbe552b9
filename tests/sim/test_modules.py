"""The simulator's modules, one responsibility each, and the names the CLI, tests and docs use."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import ocpp_sync
from ocpp_sync import sim

MODULES = {
    "ocpp_sync.sim.central": ["CentralSystem"],
    "ocpp_sync.sim.station": ["StationSimulator"],
    "ocpp_sync.sim.answers": ["StationAnswers"],
    "ocpp_sync.sim.stack": ["SimulatedStack", "SETTINGS_2X"],
    "ocpp_sync.sim.scenario": ["ScenarioError", "Step", "StepResult", "check_connectors", "load_scenario",
                               "parse_scenario", "run_scenario"],
    "ocpp_sync.sim.common": ["Exchange", "Command", "Connector"],
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_part_lives_in_its_own_module_under_600_lines(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in MODULES[module]:
        assert hasattr(loaded, name), f"{module}.{name}"
    assert loaded.__file__ is not None
    assert len(Path(loaded.__file__).read_text(encoding="utf-8").splitlines()) <= 600


def test_the_package_exports_the_public_names() -> None:
    for name in sim.__all__:
        assert getattr(sim, name) is not None
    assert sim.StationSimulator.__module__ == "ocpp_sync.sim.station"


def test_the_simulated_firmware_is_the_package_version() -> None:
    from ocpp_sync.sim import station
    assert station.__version__ == ocpp_sync.__version__
