"""Per-action calls (``cp.v16.boot_notification(...)``) and handler groups (``cp.on_group(obj)``).

Every generated call of every version goes over loopback to a peer answering
with minimal valid responses built from the official schemas; the handler
groups' profile tables and their report of unanswered actions; the accessors'
types, checked by mypy on a small sample.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs
import pytest
from support import schemas
from support.raw import WAIT, wait_until

import ocpp_sync
from ocpp_sync import v16
from ocpp_sync.chargepoint.store import QUEUED_ACTIONS
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.runtime.actions import PROFILE_MODULES, Unanswered

ROOT = Path(__file__).resolve().parent.parent.parent
ACCESSOR = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


def sample(node: dict[str, Any], full: bool = False) -> Any:
    """A small value a (ref-inlined) schema accepts: required properties only (every one if ``full``)."""
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        return {k: sample(v, full) for k, v in node.get("properties", {}).items()
                if full or k in node.get("required", ())}
    if kind == "array":
        return [sample(node["items"], full) for _ in range(max(1, node.get("minItems", 1)))]
    if kind == "string":
        return "2026-01-01T00:00:00Z" if node.get("format") == "date-time" else "1"
    if kind in ("integer", "number"):
        return node.get("minimum", 0)
    if kind == "boolean":
        return False
    return "1"


def minimal_payload(version: str, action: str, is_request: bool, full: bool = False) -> dict[str, Any]:
    payload = sample(schemas.inline_refs(schemas.message_schema(version, action, is_request)), full)
    assert isinstance(payload, dict)
    return payload


def minimal_response(version: str, action: str) -> Any:
    cls = version_module(version).RESPONSES.get(action)
    return None if cls is None else from_payload(cls, minimal_payload(version, action, False))


def call_arguments(version: str, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the wire payload of a request with every field, the keyword arguments of its generated call)."""
    payload = minimal_payload(version, action, True, full=True)
    request = from_payload(version_module(version).REQUESTS[action], payload)
    kwargs = {("timeout_" if f.name == "timeout" else f.name): getattr(request, f.name)
              for f in attrs.fields(type(request)) if getattr(request, f.name) is not None}
    return payload, kwargs


class Recorder:
    """Answers every call with its minimal response and keeps the wire payloads it was asked."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def answer(self, request: Any) -> Any:
        action = type(request).__name__[: -len("Request")]
        with self.lock:
            self.seen.setdefault(action, []).append(to_payload(request))
        return minimal_response(self.version, action)


@pytest.fixture(params=schemas.VERSIONS)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[str, ocpp_sync.ChargePoint, ocpp_sync.Station,
                                                            Recorder, Recorder]]:
    """A charge point and its station, each answering every call the other may make."""
    version = request.param
    module = version_module(version)
    at_csms, at_cp = Recorder(version), Recorder(version)
    csms = ocpp_sync.CSMS(versions=(version,))
    for action in module.CS_TO_CSMS:
        csms.on(module.REQUESTS[action])(lambda station, req: at_csms.answer(req))
    csms.start(port=0)
    cp = ocpp_sync.ChargePoint("CP_ACTIONS", f"ws://127.0.0.1:{csms.port}/ocpp", version=version,
                               reconnect=False, timeout=WAIT)
    for action in module.CSMS_TO_CS:
        cp.on(module.REQUESTS[action])(at_cp.answer)
    try:
        cp.connect()
        yield version, cp, csms.wait_for_station("CP_ACTIONS", WAIT), at_csms, at_cp
    finally:
        cp.close()
        csms.stop()


def check_every_call(version: str, calls: Any, actions: frozenset[str], peer: Recorder) -> int:
    module = version_module(version)
    done = 0
    for action in sorted(actions):
        payload, kwargs = call_arguments(version, action)
        name = PROFILE_MODULES[version].HANDLER_NAMES[action][len("on_"):]
        for method, count in ((getattr(calls, name), 1), (getattr(calls, name + "_async"), 2)):
            answer = method(**kwargs, timeout=WAIT)
            # Connected with nothing queued, even a transaction message is answered in the call.
            assert isinstance(answer, Future) == (count == 2), (action, answer)
            if isinstance(answer, Future):
                answer = answer.result(WAIT)
            response_cls = module.RESPONSES.get(action)
            if response_cls is None:  # a 2.1 SEND
                assert answer is None
            else:
                assert isinstance(answer, response_cls), (action, answer)
                assert to_payload(answer) == minimal_payload(version, action, False)
            assert wait_until(lambda a=action, n=count: len(peer.seen.get(a, ())) == n), action
            assert peer.seen[action][-1] == payload, action
            done += 1
    return done


@schemas.requires_schemas
@pytest.mark.usefixtures("no_leftover_threads")
def test_every_charge_point_call_of_every_version_reaches_the_csms(pair: Any) -> None:
    version, cp, _, at_csms, _ = pair
    calls = getattr(cp, ACCESSOR[version])
    module = version_module(version)
    assert check_every_call(version, calls, module.CS_TO_CSMS, at_csms) == 2 * len(module.CS_TO_CSMS)


@schemas.requires_schemas
@pytest.mark.usefixtures("no_leftover_threads")
def test_every_csms_call_of_every_version_reaches_the_station(pair: Any) -> None:
    version, _, station, _, at_cp = pair
    calls = getattr(station, ACCESSOR[version])
    module = version_module(version)
    assert check_every_call(version, calls, module.CSMS_TO_CS, at_cp) == 2 * len(module.CSMS_TO_CS)


def test_the_call_classes_have_exactly_their_sides_actions() -> None:
    for version, tag in ACCESSOR.items():
        module = version_module(version)
        calls = __import__(f"ocpp_sync.{tag}.calls", fromlist=["calls"])
        names = PROFILE_MODULES[version].HANDLER_NAMES
        for cls, actions in ((calls.ChargePointCalls, module.CS_TO_CSMS), (calls.StationCalls, module.CSMS_TO_CS)):
            methods = {n for n in vars(cls) if not n.startswith("_")}
            expected = {names[a][3:] for a in actions} | {names[a][3:] + "_async" for a in actions}
            assert methods == expected, (version, cls.__name__)
            # One return type per method: a queued message raises Queued, it is never returned.
            assert not [n for n in methods if not n.endswith("_async")
                        and "| Future[" in getattr(cls, n).__annotations__["return"]]
            queued = {n for n in methods if "ocpp_sync.Queued" in (getattr(cls, n).__doc__ or "")}
            if cls is calls.ChargePointCalls:
                assert queued == {names[a][3:] for a in QUEUED_ACTIONS[version] & actions}, version
            else:
                assert not queued


def test_a_call_validates_as_send_does_before_sending() -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",))
    csms.start(port=0)
    try:
        with ocpp_sync.ChargePoint("CP_V", f"ws://127.0.0.1:{csms.port}/ocpp", reconnect=False) as cp:
            with pytest.raises(ocpp_sync.ValidationError) as caught:
                cp.v16.boot_notification("A" * 21, "X")
            assert caught.value.path == "chargePointVendor"
            with pytest.raises(ocpp_sync.CallError) as refused:
                cp.v16.heartbeat(timeout=WAIT)  # sent: nothing answers it
            assert refused.value.code == "NotSupported"
    finally:
        csms.stop()


def test_the_accessor_of_another_version_raises() -> None:
    cp = ocpp_sync.ChargePoint("CP_X", "ws://127.0.0.1:1/ocpp", version="2.0.1")
    assert hasattr(cp, "v201") and not hasattr(cp, "v16") and not hasattr(cp, "v21")
    with pytest.raises(AttributeError, match=r"\.v201"):
        cp.v16.heartbeat()
    station = ocpp_sync.Station("S", "1.6")
    assert hasattr(station, "v16") and not hasattr(station, "v201")


# -- handler groups -----------------------------------------------------------------

def test_every_action_is_in_exactly_one_profile_of_its_version() -> None:
    for version, tables in PROFILE_MODULES.items():
        listed = [a for actions in tables.PROFILES.values() for a in actions]
        assert sorted(listed) == sorted(version_module(version).REQUESTS), version
        assert set(tables.LETTERS.values()) <= set(tables.PROFILES)
    assert list(PROFILE_MODULES["2.0.1"].LETTERS) == list("ABCDEFGHIJKLMNOP")
    assert list(PROFILE_MODULES["2.1"].LETTERS) == list("ABCDEFGHIJKLMNOPQRS")
    assert PROFILE_MODULES["1.6"].PROFILES["RemoteTrigger"] == {"TriggerMessage"}
    assert PROFILE_MODULES["2.0.1"].PROFILES["SmartCharging"] >= {"SetChargingProfile", "NotifyEVChargingNeeds"}


class ResetOnly:
    """A 1.6 charge point's group for Core that answers Reset and nothing else of it."""

    def __init__(self) -> None:
        self.resets: list[Any] = []

    def on_reset(self, request: v16.ResetRequest) -> v16.ResetResponse:
        self.resets.append(request)
        return v16.ResetResponse(status="Accepted")

    def on_trigger_message(self, request: v16.TriggerMessageRequest) -> v16.TriggerMessageResponse:
        return v16.TriggerMessageResponse(status="Accepted")


@pytest.mark.usefixtures("no_leftover_threads")
def test_a_group_answers_and_its_missing_actions_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",))
    csms.start(port=0)
    group = ResetOnly()
    cp = ocpp_sync.ChargePoint("CP_G", f"ws://127.0.0.1:{csms.port}/ocpp", reconnect=False)
    cp.on_group(group, profiles=("Core", "RemoteTrigger"))
    core_in = sorted(PROFILE_MODULES["1.6"].PROFILES["Core"] & v16.CSMS_TO_CS)
    missing = [Unanswered("1.6", "Core", a) for a in core_in if a != "Reset"]
    assert cp.unanswered() == missing
    try:
        with caplog.at_level(logging.WARNING, logger="ocpp_sync.groups"):
            cp.connect()
        warned = [r.getMessage() for r in caplog.records if r.name == "ocpp_sync.groups"]
        assert len(warned) == 1 and "UnlockConnector (1.6 Core)" in warned[0] and "Reset " not in warned[0]
        station = csms.wait_for_station("CP_G", WAIT)
        assert station.v16.reset("Soft", timeout=WAIT).status == "Accepted"
        assert [r.type for r in group.resets] == ["Soft"]

        @cp.on(v16.UnlockConnectorRequest)
        def unlock(request: v16.UnlockConnectorRequest) -> v16.UnlockConnectorResponse:
            return v16.UnlockConnectorResponse(status="Unlocked")

        assert Unanswered("1.6", "Core", "UnlockConnector") not in cp.unanswered()
    finally:
        cp.close()
        csms.stop()


def test_a_csms_group_serves_every_version_it_names() -> None:
    class Central:
        def on_heartbeat(self, station: ocpp_sync.Station, request: Any) -> Any:
            return version_module(station.version).HeartbeatResponse(current_time="2026-01-01T00:00:00Z")

    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"))
    csms.on_group(Central(), profiles=("Core", "G"))
    assert {(u.version, u.profile) for u in csms.unanswered()} == {("1.6", "Core"), ("2.0.1", "Availability")}
    assert Unanswered("2.0.1", "Availability", "StatusNotification") in csms.unanswered()
    assert not [u for u in csms.unanswered() if u.action == "Heartbeat"]
    csms.start(port=0)
    try:
        for version in ("1.6", "2.0.1"):
            with ocpp_sync.ChargePoint(f"CP_{version}", f"ws://127.0.0.1:{csms.port}/ocpp", version=version,
                                       reconnect=False) as cp:
                answer = getattr(cp, ACCESSOR[version]).heartbeat(timeout=WAIT)
                assert answer.current_time.year == 2026
    finally:
        csms.stop()


def test_a_group_is_refused_whole_when_it_cannot_be_right() -> None:
    class WrongWay:
        def on_reset(self, request: Any) -> Any: ...
        def on_boot_notification(self, request: Any) -> Any: ...  # the CSMS answers that

    cp = ocpp_sync.ChargePoint("CP_W", "ws://127.0.0.1:1/ocpp")
    with pytest.raises(ValueError, match="on_boot_notification"):
        cp.on_group(WrongWay())
    with pytest.raises(ValueError, match="no on_<action>"):
        cp.on_group(object())
    with pytest.raises(ValueError, match="no profile 'Kore'"):
        cp.on_group(ResetOnly(), profiles=("Kore",))
    csms = ocpp_sync.CSMS(versions=("2.0.1",))
    with pytest.raises(ValueError, match="not one of"):
        csms.on_group(ResetOnly(), version="1.6")
    assert cp._handlers == {} and csms._handlers == {} and cp.unanswered() == []


# -- typing ---------------------------------------------------------------------------

GOOD = '''
import datetime
from concurrent.futures import Future
import ocpp_sync
from ocpp_sync import v16, v201

cp = ocpp_sync.ChargePoint("CP", "ws://x", version="2.0.1")
boot: v201.BootNotificationResponse = cp.v201.boot_notification(
    v201.ChargingStationType(model="M", vendor_name="V"), "PowerUp", timeout=5.0)
later: Future[v201.HeartbeatResponse] = cp.v201.heartbeat_async()
event = cp.v201.transaction_event("Started", datetime.datetime.now(), "Authorized", 1,
                                  v201.TransactionType(transaction_id="t"))
if not isinstance(event, Future):
    total: float | None = event.total_cost

def serve(station: ocpp_sync.Station) -> v16.ResetResponse:
    return station.v16.reset("Hard")
'''

BAD = '''
import ocpp_sync
from ocpp_sync import v16

cp = ocpp_sync.ChargePoint("CP", "ws://x")
cp.v16.reset("Hard")
cp.v16.boot_notification(1, "model")
wrong: v16.HeartbeatResponse = cp.v16.authorize("tag")
cp.v16.authorize("tag", parent_id_tag="x")
'''


def test_mypy_sees_each_calls_types(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    (tmp_path / "good_sample.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad_sample.py").write_text(BAD, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(tmp_path / "good_sample.py"), str(tmp_path / "bad_sample.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={"MYPYPATH": str(ROOT), "PATH": ""})
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in lines if "good_sample" in line], result.stdout
    bad = "\n".join(line for line in lines if "bad_sample" in line)
    assert '"ChargePointCalls" has no attribute "reset"' in bad, result.stdout
    assert 'Argument 1 to "boot_notification"' in bad, result.stdout
    assert 'expression has type "AuthorizeResponse", variable has type "HeartbeatResponse"' in bad, result.stdout
    assert 'Unexpected keyword argument "parent_id_tag"' in bad, result.stdout
    assert len(lines) == 4, result.stdout
