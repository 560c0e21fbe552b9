"""Every CSMS-under-test case passes against our CSMS, and fails naming the step and field
against a CSMS with one seeded defect."""
from __future__ import annotations

from typing import Any

import pytest
from targets import FAST, SHORT, csms_target, first_boot_answered, operator

from ocpp_sync.conformance import BOOT_PENDING, BOOT_REJECTED, REQUIRES_BOOT, Report, run
from ocpp_sync.conformance.case import FAILED, INCONCLUSIVE, PASSED
from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.versions import version_module

CORE_201 = ("TC_B_01_CSMS,TC_B_06_CSMS,TC_B_07_CSMS,TC_B_09_CSMS,TC_B_20_CSMS,TC_E_*,TC_F_*,"
            "KIT_X_01_CSMS")


def _outcomes(report: Report) -> dict[str, str]:
    return {v.case_id: v.outcome for v in report.verdicts}


@pytest.mark.usefixtures("no_leftover_threads")
def test_the_core_cases_pass_against_our_csms() -> None:
    with csms_target() as (csms, target):
        report = run(target, CORE_201, config=FAST, prompt=operator(csms, target.station_id))
    assert set(_outcomes(report).values()) == {PASSED}, report.text()
    assert len(report.verdicts) == 10
    boot = report.verdict("TC_B_01_CSMS")
    assert [f["action"] for f in boot.frames if f["type"] == "CALL"][:2] == ["BootNotification",
                                                                              "StatusNotification"]


def test_the_16_cases_pass_against_our_csms() -> None:
    with csms_target("1.6") as (csms, target):
        report = run(target, "*", config=FAST, prompt=operator(csms, target.station_id, "1.6"))
    assert _outcomes(report) == {"TC_001_CSMS": PASSED, "TC_004_1_CSMS": PASSED,
                                 "TC_010_CSMS": PASSED, "TC_012_CSMS": PASSED,
                                 "KIT_X_01_CSMS": PASSED}, report.text()


def test_a_16_csms_that_stops_another_transaction_fails_the_remote_stop_case() -> None:
    m = version_module("1.6")
    with csms_target("1.6") as (csms, target):
        wrong = {"csms__RemoteStopTransaction": lambda: csms.wait_for_station(
            target.station_id, 5).send(m.RemoteStopTransactionRequest(transaction_id=999))}
        verdict = run(target, "TC_012_CSMS", config=FAST,
                      prompt=operator(csms, target.station_id, "1.6", **wrong)).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == \
        (FAILED, "remote stop", "$.transactionId", 999)


def test_a_16_csms_that_blocks_the_tag_of_a_transaction_fails_the_identification_case() -> None:
    m = version_module("1.6")
    with csms_target("1.6") as (csms, target):
        csms.on(m.StartTransactionRequest)(lambda station, request: m.StartTransactionResponse(
            transaction_id=1, id_tag_info=m.IdTagInfo(status="Blocked")))
        verdict = run(target, "TC_004_1_CSMS", config=FAST).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == \
        (FAILED, "start", "$.idTagInfo.status", "Blocked")
    assert verdict.frame is not None and verdict.frame["action"] == "StartTransaction"


def test_a_16_csms_that_starts_for_another_tag_fails_the_remote_start_case() -> None:
    m = version_module("1.6")
    with csms_target("1.6") as (csms, target):
        wrong = {"csms__RemoteStartTransaction": lambda: csms.wait_for_station(
            target.station_id, 5).send(m.RemoteStartTransactionRequest(id_tag="SOMEONE-ELSE"))}
        verdict = run(target, "TC_010_CSMS", config=FAST,
                      prompt=operator(csms, target.station_id, "1.6", **wrong)).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.expected, verdict.got) == \
        (FAILED, "remote start", "$.idTag", FAST.valid_id_token, "SOMEONE-ELSE")


@pytest.mark.parametrize("status, need, case_id", [("Pending", BOOT_PENDING, "TC_B_02_CSMS"),
                                                   ("Rejected", BOOT_REJECTED, "TC_B_03_CSMS")])
def test_a_held_back_boot_passes_when_configured_and_is_inconclusive_when_not(
        status: str, need: str, case_id: str) -> None:
    with csms_target() as (csms, target):
        first_boot_answered(csms, status)
        configured = run(target, case_id, config=FAST.__class__(**{**FAST.__dict__, "provides": {need}}))
        unconfigured = run(target, case_id, config=FAST)
    assert configured.verdict(case_id).outcome == PASSED, configured.text()
    assert unconfigured.verdict(case_id).outcome == INCONCLUSIVE
    assert need in unconfigured.verdict(case_id).message


def test_a_call_before_the_boot_is_refused_by_a_csms_that_requires_the_boot() -> None:
    config = FAST.__class__(**{**FAST.__dict__, "provides": {REQUIRES_BOOT}})
    with csms_target(unknown_stations="Pending") as (_csms, target):
        assert run(target, "KIT_X_02_CSMS", config=config).verdicts[0].outcome == PASSED


def test_a_case_that_needs_an_operator_is_inconclusive_without_a_prompt() -> None:
    with csms_target() as (_csms, target):
        verdict = run(target, "TC_B_06_CSMS", config=FAST).verdicts[0]
    assert verdict.outcome == INCONCLUSIVE and "csms.GetVariables" in verdict.message


# -- seeded defects: each is caught by its case, at its step, naming the frame and field ---------

def _boot_rejected(csms: Any, m: Any) -> None:
    csms.on(m.BootNotificationRequest)(lambda station, request: m.BootNotificationResponse(
        current_time=_now(), interval=300, status="Rejected"))


def _heartbeat_fails(csms: Any, m: Any) -> None:
    def heartbeat(station: Any, request: Any) -> Any:
        raise OCPPError("broken", code="InternalError")
    csms.on(m.HeartbeatRequest)(heartbeat)


def _token_invalid(csms: Any, m: Any) -> None:
    csms.on(m.AuthorizeRequest)(lambda station, request: m.AuthorizeResponse(
        id_token_info=m.IdTokenInfoType(status="Invalid")))


def _transaction_token_blocked(csms: Any, m: Any) -> None:
    csms.on(m.TransactionEventRequest)(lambda station, request: m.TransactionEventResponse(
        id_token_info=m.IdTokenInfoType(status="Blocked")))


def _now() -> Any:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc)


def _get_wrong_variable(csms: Any, target: Any, m: Any) -> Any:
    return {"csms__GetVariables": lambda: csms.wait_for_station(target.station_id, 5).send(
        m.GetVariablesRequest(get_variable_data=[m.GetVariableDataType(
            component=m.ComponentType(name="OCPPCommCtrlr"),
            variable=m.VariableType(name="HeartbeatInterval"))]))}


def _sets_another_variable(csms: Any, target: Any, m: Any) -> Any:
    return {"csms__SetVariables": lambda: csms.wait_for_station(target.station_id, 5).send(
        m.SetVariablesRequest(set_variable_data=[m.SetVariableDataType(
            component=m.ComponentType(name="OCPPCommCtrlr"),
            variable=m.VariableType(name="HeartbeatInterval"), attribute_value="60")]))}


def _refuses_notify_event(csms: Any, m: Any) -> None:
    def notify_event(station: Any, request: Any) -> Any:
        raise OCPPError("not here", code="NotSupported")
    csms.on(m.NotifyEventRequest)(notify_event)


def _starts_for_a_central_token(csms: Any, target: Any, m: Any) -> Any:
    return {"csms__RequestStartTransaction": lambda: csms.wait_for_station(
        target.station_id, 5).send(m.RequestStartTransactionRequest(
            id_token=m.IdTokenType(id_token="VALID-TAG-01", type="Central"), remote_start_id=3))}


def _never_resets(csms: Any, target: Any, m: Any) -> Any:
    return {"csms__Reset": lambda: None}


DEFECTS = [
    ("boot rejected", _boot_rejected, None, {}, "TC_B_01_CSMS", "boot", "BootNotification",
     "$.status", "Accepted", "Rejected"),
    ("heartbeat CALLERROR", _heartbeat_fails, None, {}, "TC_B_01_CSMS", "heartbeat", "Heartbeat",
     "$", "a CALLRESULT", "InternalError"),
    ("reads the wrong variable", None, _get_wrong_variable, {}, "TC_B_06_CSMS", "get variables",
     "GetVariables", "$.getVariableData[0].variable.name", "OfflineThreshold", "HeartbeatInterval"),
    ("reads one of two variables", None, _get_wrong_variable, {}, "TC_B_07_CSMS", "get variables",
     "GetVariables", "$.getVariableData", None, None),
    ("sets another variable", None, _sets_another_variable, {}, "TC_B_09_CSMS", "set variables",
     "SetVariables", "$.setVariableData", None, None),
    ("refuses the connector's NotifyEvent", _refuses_notify_event, None, {}, "TC_E_09_CSMS",
     "connect", "NotifyEvent", "$", "a CALLRESULT", "NotSupported"),
    ("starts for a token of another type", None, _starts_for_a_central_token, {}, "TC_F_01_CSMS",
     "remote start", "RequestStartTransaction", "$.idToken.type", "ISO14443", "Central"),
    ("never sends the reset", None, _never_resets, {}, "TC_B_20_CSMS", "reset", None, None,
     "a Reset CALL", None),
    ("refuses a valid token", _token_invalid, None, {}, "TC_E_10_CSMS", "authorize", "Authorize",
     "$.idTokenInfo.status", "Accepted", "Invalid"),
    ("blocks the token of a transaction", _transaction_token_blocked, None, {}, "TC_E_04_CSMS",
     "energy transfer", "TransactionEvent", "$.idTokenInfo.status", "Accepted", "Blocked"),
    ("takes a schema-breaking request", None, None, {"lenient": True}, "KIT_X_01_CSMS",
     "unknown field", "StatusNotification", "$", "a CALLERROR", None),
]


@pytest.mark.parametrize("name, handlers, actions, options, case_id, step, action, path, "
                         "expected, got", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_a_seeded_defect_fails_its_case_naming_step_frame_and_field(
        name: str, handlers: Any, actions: Any, options: dict[str, Any], case_id: str, step: str,
        action: str | None, path: str | None, expected: Any, got: Any) -> None:
    m = version_module("2.0.1")
    with csms_target(**options) as (csms, target):
        if handlers is not None:
            handlers(csms, m)
        extra = actions(csms, target, m) if actions is not None else {}
        report = run(target, case_id, config=SHORT,
                     prompt=operator(csms, target.station_id, **extra))
    verdict = report.verdict(case_id)
    assert verdict.outcome == FAILED, report.text()
    assert verdict.step == step
    if action is not None:
        assert verdict.frame is not None and verdict.frame["action"] == action
        assert verdict.frame["message_id"] and verdict.frame["direction"].startswith(
            ("from the CSMS", "to the CSMS"))
    assert verdict.field == path
    if expected is not None:
        assert verdict.expected == expected or str(expected) in str(verdict.expected)
    if got is not None:
        assert verdict.got == got
    assert case_id in verdict.describe() and f"step: {step}" in verdict.describe()


def test_a_csms_that_accepts_at_once_fails_the_pending_case() -> None:
    config = FAST.__class__(**{**FAST.__dict__, "provides": {BOOT_PENDING}})
    with csms_target() as (_csms, target):
        verdict = run(target, "TC_B_02_CSMS", config=config).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.expected, verdict.got) == \
        (FAILED, "boot pending", "$.status", "Pending", "Accepted")


def test_a_csms_that_takes_calls_before_the_boot_fails_the_boot_rule() -> None:
    config = FAST.__class__(**{**FAST.__dict__, "provides": {REQUIRES_BOOT}})
    with csms_target() as (_csms, target):   # unknown stations count as Accepted
        verdict = run(target, "KIT_X_02_CSMS", config=config).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.expected) == (FAILED, "call before boot",
                                                                 "a CALLERROR")
    assert verdict.frame is not None and verdict.frame["type"] == "CALLRESULT"


def test_a_csms_that_accepts_at_once_fails_the_rejected_case() -> None:
    config = FAST.__class__(**{**FAST.__dict__, "provides": {BOOT_REJECTED}})
    with csms_target() as (_csms, target):
        verdict = run(target, "TC_B_03_CSMS", config=config).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == \
        (FAILED, "boot rejected", "$.status", "Accepted")


def test_a_16_csms_that_rejects_the_boot_fails_the_16_boot_case() -> None:
    m = version_module("1.6")
    with csms_target("1.6") as (csms, target):
        csms.on(m.BootNotificationRequest)(lambda station, request: m.BootNotificationResponse(
            current_time=_now(), interval=300, status="Rejected"))
        verdict = run(target, "TC_001_CSMS", config=FAST).verdicts[0]
    assert (verdict.outcome, verdict.step, verdict.field, verdict.got) == \
        (FAILED, "boot", "$.status", "Rejected")
    assert verdict.frame is not None and verdict.frame["action"] == "BootNotification"
