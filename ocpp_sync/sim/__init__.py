"""Simulation: a simulated charge point and central system, and the scenario language of ``ocpp-sync station``.

:mod:`~ocpp_sync.sim.central` is the permissive CSMS, :mod:`~ocpp_sync.sim.station`
the charge point (its answers to the CSMS in :mod:`~ocpp_sync.sim.answers`), and
:mod:`~ocpp_sync.sim.scenario` the steps a scenario file may contain.
"""
from ocpp_sync.sim.central import CentralSystem
from ocpp_sync.sim.common import CSMS, STATION, Command, Connector, Exchange
from ocpp_sync.sim.scenario import (
           ScenarioError,
           Step,
           StepResult,
           check_connectors,
           load_scenario,
           parse_scenario,
           run_scenario,
)
from ocpp_sync.sim.station import StationSimulator

__all__ = ["Exchange", "CentralSystem", "StationSimulator", "Command", "Connector", "CSMS", "STATION",
           "ScenarioError", "Step", "StepResult", "check_connectors", "load_scenario", "parse_scenario", "run_scenario"]
