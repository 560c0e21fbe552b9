"""A conformance kit keyed to the OCTT test-case ids, for a real CSMS or a real station.

The kit plays the other side: a station connecting to a CSMS under test, or
the CSMS a station under test connects to. Pick cases by id glob, block, role
and version (:func:`select`), play them (:func:`run`), read the
:class:`Report`. See docs/conformance.md.
"""
from ocpp_sync.conformance.case import Case, Verdict, all_cases, get, select
from ocpp_sync.conformance.config import (
    BOOT_PENDING,
    BOOT_REJECTED,
    LOCAL_LIST_DISABLED,
    REQUIRES_BOOT,
    Config,
)
from ocpp_sync.conformance.console import run_in_notebook
from ocpp_sync.conformance.prompts import ScriptedPrompt, console_prompt, input_prompt, no_prompt
from ocpp_sync.conformance.report import Report
from ocpp_sync.conformance.runner import cases_for, run, run_case
from ocpp_sync.conformance.sides import CsmsUnderTest, StationUnderTest

__all__ = ["Case", "Verdict", "Report", "Config", "CsmsUnderTest", "StationUnderTest", "run",
           "run_case", "select", "cases_for", "all_cases", "get", "ScriptedPrompt",
           "console_prompt", "input_prompt", "no_prompt", "BOOT_PENDING", "BOOT_REJECTED",
           "REQUIRES_BOOT", "LOCAL_LIST_DISABLED", "run_in_notebook"]
