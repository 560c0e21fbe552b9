"""The kit without sockets: case ids, selection, JSON-path checks, configuration, prompts, reports."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from ocpp_sync.conformance import Config, Report, ScriptedPrompt, Verdict, console_prompt, select
from ocpp_sync.conformance.case import Case, all_cases, get
from ocpp_sync.conformance.check import MISSING, absent_or, at, first_mismatch, one_of, present
from ocpp_sync.errors import CaseInconclusive


def _noop(ctx: object) -> None:
    """A case body that is never played."""


@pytest.mark.parametrize("case_id, role, block", [("TC_B_01_CSMS", "csms", "B"),
                                                  ("TC_B_01_CS", "station", "B"),
                                                  ("TC_001_CS", "station", ""),
                                                  ("TC_004_1_CSMS", "csms", ""),
                                                  ("KIT_X_01_CSMS", "csms", "X")])
def test_a_case_id_names_its_block_and_must_match_its_role(case_id: str, role: str, block: str) -> None:
    assert Case(case_id, "t", ("2.0.1",), role, ("s",), _noop).block == block
    other = "station" if role == "csms" else "csms"
    with pytest.raises(ValueError, match="suffix"):
        Case(case_id, "t", ("2.0.1",), other, ("s",), _noop)


@pytest.mark.parametrize("case_id", ["TC_B_1_CSMS", "B_01_CSMS", "TC_B_01", "tc_b_01_csms"])
def test_a_malformed_case_id_is_refused(case_id: str) -> None:
    with pytest.raises(ValueError, match="not a test case id"):
        Case(case_id, "t", ("2.0.1",), "csms", ("s",), _noop)


def test_the_registry_selects_by_glob_role_version_and_block() -> None:
    ids = [c.id for c in all_cases()]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert {c.id for c in select("TC_B_0*_CSMS")} == {"TC_B_01_CSMS", "TC_B_02_CSMS",
                                                      "TC_B_03_CSMS", "TC_B_06_CSMS",
                                                      "TC_B_07_CSMS", "TC_B_09_CSMS"}
    assert all(c.role == "station" for c in select(role="station"))
    assert {c.id for c in select(version="1.6", role="csms")} == {
        "TC_001_CSMS", "TC_004_1_CSMS", "TC_010_CSMS", "TC_012_CSMS", "KIT_X_01_CSMS"}
    assert {c.id for c in select("TC_04*", version="1.6")} == {
        "TC_042_1_CS", "TC_042_2_CS", "TC_043_CS", "TC_043_1_CS", "TC_043_2_CS"}
    assert {c.id for c in select("TC_*", block="e")} == {"TC_E_04_CSMS", "TC_E_09_CSMS",
                                                         "TC_E_10_CSMS"}
    assert [c.id for c in select("TC_001_CS, TC_B_01_CS")] == ["TC_001_CS", "TC_B_01_CS"]
    assert get("TC_B_01_CSMS").requirements == ("B01.FR.02",)
    with pytest.raises(KeyError):
        get("TC_Z_99_CSMS")
    with pytest.raises(ValueError):
        select(role="charger")


def test_json_paths_read_nested_fields_and_tell_absent_from_null() -> None:
    payload = {"a": {"b": [{"c": 1}, {"c": None}]}}
    assert at(payload, "$.a.b[0].c") == 1
    assert at(payload, "$.a.b[1].c") is None
    assert at(payload, "$.a.b[2].c") is MISSING and at(payload, "$.x") is MISSING
    assert at(payload, "$") == payload
    with pytest.raises(ValueError):
        at(payload, "a.b")
    mismatch = first_mismatch(payload, [("$.a.b[0].c", 1), ("$.a.b[1].c", present())])
    assert mismatch is not None and (mismatch[0], repr(mismatch[1]), mismatch[2]) == \
        ("$.a.b[1].c", "present", None)
    assert first_mismatch(payload, [("$.x", absent_or("y")), ("$.a.b[0].c", one_of(1, 2))]) is None
    assert first_mismatch(payload, [("$.x", 1)]) == ("$.x", 1, MISSING)


def test_the_configuration_is_checked_up_front() -> None:
    config = Config.from_mapping({"step_timeout": 3, "provides": ["boot_pending"]})
    assert config.step_timeout == 3 and config.provides == frozenset({"boot_pending"})
    with pytest.raises(ValueError, match="unknown configuration keys: timeout"):
        Config.from_mapping({"timeout": 3})
    with pytest.raises(ValueError, match="evse_id"):
        Config(evse_id=0)
    with pytest.raises(ValueError, match="step_timeout"):
        Config(step_timeout=0)
    with pytest.raises(ValueError, match="provides"):
        Config.from_mapping({"provides": "boot_pending"})


def test_prompts_ask_skip_and_script() -> None:
    out = io.StringIO()
    console_prompt("reboot", "Power-cycle it", stream=out, read=io.StringIO("\n"))
    assert "[reboot] Power-cycle it" in out.getvalue()
    with pytest.raises(CaseInconclusive, match="skipped"):
        console_prompt("reboot", "Power-cycle it", stream=out, read=io.StringIO("s\n"))
    with pytest.raises(CaseInconclusive):   # end of input: nobody is there
        console_prompt("reboot", "Power-cycle it", stream=out, read=io.StringIO(""))
    done: list[str] = []
    scripted = ScriptedPrompt({"plug_in": lambda: done.append("plugged")})
    scripted("plug_in", "Plug in")
    with pytest.raises(CaseInconclusive, match="no scripted action"):
        scripted("reboot", "Power-cycle it")
    assert done == ["plugged"] and scripted.asked == ["plug_in", "reboot"]


def test_the_report_is_a_table_with_the_failures_spelled_out_and_json() -> None:
    failed = Verdict("TC_B_01_CSMS", "boot", "csms", "2.0.1", "failed", "BootNotification: no",
                     step="boot", frame={"type": "CALLRESULT", "action": "BootNotification",
                                         "message_id": "m-1", "direction": "from the CSMS under test"},
                     field="$.status", expected="Accepted", got="Rejected", seconds=0.1)
    report = Report("csms at ws://x", [Verdict("TC_E_04_CSMS", "tx", "csms", "2.0.1", "passed"),
                                       failed])
    text = report.text()
    assert "TC_B_01_CSMS  2.0.1    failed" in text
    assert "field: $.status: expected 'Accepted', got 'Rejected'" in text
    assert "frame: CALLRESULT BootNotification id=m-1 (from the CSMS under test)" in text
    assert text.endswith("1 passed, 1 failed, 0 inconclusive, 0 error")
    assert not report.ok
    data = json.loads(report.json())
    assert data["counts"]["failed"] == 1 and data["verdicts"][1]["field"] == "$.status"


def test_the_guide_lists_every_case_written() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text()
    table = guide[guide.index("## The cases"):guide.index("## Not written yet")]
    assert all(case.id in table for case in all_cases())
    assert f"{len(all_cases())} cases" in table


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TOML needs tomllib (Python 3.11+)")
def test_a_configuration_file_is_json_or_toml_and_checked(tmp_path: Path) -> None:
    from ocpp_sync.conformance.console import load_config
    toml = tmp_path / "kit.toml"
    toml.write_text('step_timeout = 4\nprovides = ["boot_pending"]\n')
    assert load_config(toml).step_timeout == 4
    broken = tmp_path / "kit.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        load_config(broken)
    toml.write_text("connectors = 0\n")
    with pytest.raises(ValueError, match="connectors"):
        load_config(toml)
    with pytest.raises(ValueError, match="cannot read"):
        load_config(tmp_path / "missing.json")


def test_a_run_can_be_limited_to_a_block() -> None:
    from ocpp_sync.conformance import CsmsUnderTest, run
    target = CsmsUnderTest("ws://127.0.0.1:1/ocpp", "CP_1")
    report = run(target, "TC_*", block="Q")   # no case: nothing connects
    assert report.verdicts == []
