"""``ocpp-sync fleet``: many simulated stations against one CSMS, spread over processes.

:mod:`~ocpp_sync.fleet.plan` draws the run from a seed, :mod:`~ocpp_sync.fleet.worker`
plays a share of it in each process (:mod:`~ocpp_sync.fleet.station`),
:mod:`~ocpp_sync.fleet.run` adds up the figures (:mod:`~ocpp_sync.fleet.figures`)
and :mod:`~ocpp_sync.fleet.report`, :mod:`~ocpp_sync.fleet.progress` and
:mod:`~ocpp_sync.fleet.plot` show them.
"""
from ocpp_sync.fleet.command import INTERRUPTED, fleet_command
from ocpp_sync.fleet.figures import Figures, Histogram
from ocpp_sync.fleet.plan import MIX, FleetOptions, StationPlan, plan_fleet, share_out
from ocpp_sync.fleet.report import build_report, format_report, plan_digest
from ocpp_sync.fleet.run import Outcome, Progress, run_fleet

__all__ = ["FleetOptions", "StationPlan", "plan_fleet", "share_out", "MIX", "Figures", "Histogram",
           "run_fleet", "Outcome", "Progress", "build_report", "format_report", "plan_digest",
           "fleet_command", "INTERRUPTED"]
