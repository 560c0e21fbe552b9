"""The kit's front ends: the ocpp-sync conformance command, pytest items per case id, Jupyter."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from targets import FAST, csms_target, operator

from ocpp_sync import cli
from ocpp_sync.conformance import run_in_notebook
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.pytest_plugin import check_conformance, conformance_ids


def _reject_boots(csms: Any) -> None:
    m = version_module("2.0.1")
    csms.on(m.BootNotificationRequest)(lambda station, request: m.BootNotificationResponse(
        current_time="2026-01-01T00:00:00Z", interval=300, status="Rejected"))


def test_the_command_runs_cases_and_prints_json(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    config = tmp_path / "kit.json"
    config.write_text(json.dumps({"step_timeout": 2, "valid_id_token": "TAG-1"}))
    with csms_target() as (_csms, target):
        status = cli.main(["conformance", "--role", "csms", "--url", target.url, "--id",
                           target.station_id, "--cases", "TC_B_01_CSMS,TC_E_1*", "--json",
                           "--config", str(config)])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert status == 0 and report["ok"] and report["counts"]["passed"] == 2
    assert "[1/2] TC_B_01_CSMS" in err and "[2/2] TC_E_10_CSMS" in err


def test_the_command_prints_the_table_and_fails_when_a_case_fails(
        capsys: pytest.CaptureFixture[str]) -> None:
    with csms_target() as (csms, target):
        _reject_boots(csms)
        status = cli.main(["conformance", "--role", "csms", "--url", target.url, "--id",
                           target.station_id, "--cases", "TC_B_01_CSMS"])
    out = capsys.readouterr().out
    assert status == 1
    assert "TC_B_01_CSMS     failed" in out and "field: $.status: expected 'Accepted', got 'Rejected'" in out


def test_the_command_checks_its_input_up_front(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    bad = tmp_path / "kit.json"
    bad.write_text('{"timeout": 3}')
    common = ["conformance", "--role", "csms", "--url", "ws://127.0.0.1:1/ocpp", "--id", "CP"]
    assert cli.main([*common, "--config", str(bad)]) == 2
    assert "unknown configuration keys: timeout" in capsys.readouterr().err
    assert cli.main([*common, "--cases", "TC_Q_*"]) == 2
    assert cli.main([*common, "--cases", "TC_B_0*", "--list"]) == 0
    assert "TC_B_06_CSMS" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["conformance", "--role", "csms", "--id", "CP"])


def test_the_console_prompt_of_the_command_can_skip_a_case(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("s\n"))
    with csms_target() as (_csms, target):
        status = cli.main(["conformance", "--role", "csms", "--url", target.url, "--id",
                           target.station_id, "--cases", "TC_B_06_CSMS"])
    captured = capsys.readouterr()
    assert status == 0 and "inconclusive" in captured.out
    assert "[csms.GetVariables] Make the CSMS get OCPPCommCtrlr.OfflineThreshold" in captured.err


@pytest.mark.parametrize("case_id", conformance_ids("TC_B_0[67]_CSMS,TC_E_*", role="csms",
                                                    version="2.0.1"))
def test_each_case_is_a_pytest_item_named_by_its_id(case_id: str,
                                                    request: pytest.FixtureRequest) -> None:
    assert request.node.name == f"test_each_case_is_a_pytest_item_named_by_its_id[{case_id}]"
    with csms_target() as (csms, target):
        verdict = check_conformance(case_id, target, config=FAST,
                                    prompt=operator(csms, target.station_id))
    assert verdict.case_id == case_id


def test_a_failed_case_fails_its_pytest_item_with_the_verdict() -> None:
    with csms_target() as (csms, target):
        _reject_boots(csms)
        with pytest.raises(pytest.fail.Exception, match=r"step: boot[\s\S]*field: \$\.status"):
            check_conformance("TC_B_01_CSMS", target, config=FAST)
    with csms_target() as (_csms, target), \
            pytest.raises(pytest.skip.Exception, match="needs a person"):
            check_conformance("TC_B_06_CSMS", target, config=FAST)


def test_the_notebook_call_prompts_with_input_and_shows_a_table(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with csms_target() as (csms, target):
        script = operator(csms, target.station_id)
        monkeypatch.setattr("builtins.input", lambda question: script(
            "csms.GetVariables", question) or "")
        report = run_in_notebook(target, "TC_B_06_CSMS", config=FAST)
    assert report.ok and report.verdicts[0].outcome == "passed"
    assert "<td>TC_B_06_CSMS</td>" in report._repr_html_()


def test_the_command_listens_for_a_station_under_test(capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    import threading

    from ocpp_sync.chargepoint.chargepoint import ChargePoint
    from ocpp_sync.protocol.retry import BackOff

    with socket.socket() as probe:   # a free port: the command is given a fixed one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    m = version_module("2.0.1")
    cp = ChargePoint("CLI_SUT", f"ws://127.0.0.1:{port}/ocpp", "2.0.1", reconnect=False,
                     retry_first_connect=True, backoff=BackOff(0.05, 0.05))
    cp.on(m.SetVariablesRequest)(lambda request: m.SetVariablesResponse(set_variable_result=[
        m.SetVariableResultType(attribute_status="Accepted", component=item.component,
                                variable=item.variable) for item in request.set_variable_data]))
    connecting = threading.Thread(target=cp.connect, name="test-sut-connect", daemon=True)
    connecting.start()
    try:
        status = cli.main(["conformance", "--role", "station", "--host", "127.0.0.1", "--port",
                           str(port), "--id", "CLI_SUT", "--cases", "TC_B_09_CS"])
    finally:
        connecting.join(5.0)
        cp.close()
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"listening on port {port}" in out and "TC_B_09_CS  2.0.1    passed" in out
