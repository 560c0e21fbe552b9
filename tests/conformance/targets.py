"""Our own CSMS as a correct CSMS under test, and the scripted operator that drives it."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from support.raw import WAIT

from ocpp_sync.conformance import Config, CsmsUnderTest, ScriptedPrompt
from ocpp_sync.csms.csms import CSMS
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.testing import csms_url, running_csms

_ids = itertools.count(1)
FAST = Config(step_timeout=2.0, boot_retry_wait=0.05, connect_timeout=5.0)
#: For a peer that is meant never to do what a case waits for.
SHORT = Config(step_timeout=0.5, boot_retry_wait=0.05, connect_timeout=2.0)


def new_station_id() -> str:
    return f"KIT_CP_{next(_ids)}"


@contextmanager
def csms_target(version: str = "2.0.1", **options: Any) -> Iterator[tuple[CSMS, CsmsUnderTest]]:
    """Our CSMS (accepting every station) and a target naming a fresh station id on it."""
    with running_csms((version,), timeout=WAIT, **options) as csms:
        yield csms, CsmsUnderTest(csms_url(csms), new_station_id(), version)


def operator(csms: CSMS, station_id: str, version: str = "2.0.1",
             **overrides: Callable[[], Any]) -> ScriptedPrompt:
    """What a CSMS operator does when a case asks: make the CSMS send the request."""
    m = version_module(version)

    def station() -> Any:
        return csms.wait_for_station(station_id, timeout=WAIT)

    def variable(component: str, name: str) -> Any:
        return m.GetVariableDataType(component=m.ComponentType(name=component),
                                     variable=m.VariableType(name=name))

    if version == "1.6":
        def last_transaction() -> Any:
            answers = [e for e in station().history.entries()
                       if e.action == "StartTransaction" and e.type == "CALLRESULT"]
            return answers[-1].payload["transactionId"]

        actions: dict[str, Callable[[], Any]] = {
            "csms.RemoteStartTransaction": lambda: station().send(m.RemoteStartTransactionRequest(
                id_tag=FAST.valid_id_token, connector_id=FAST.connector_id)),
            "csms.RemoteStopTransaction": lambda: station().send(m.RemoteStopTransactionRequest(
                transaction_id=last_transaction()))}
        actions.update({key.replace("__", "."): action for key, action in overrides.items()})
        return ScriptedPrompt(actions)
    actions = {
        "csms.GetVariables": lambda: station().send(m.GetVariablesRequest(get_variable_data=[
            variable("OCPPCommCtrlr", "OfflineThreshold"),
            variable("AuthCtrlr", "AuthorizeRemoteStart")])),
        "csms.SetVariables": lambda: station().send(m.SetVariablesRequest(set_variable_data=[
            m.SetVariableDataType(component=m.ComponentType(name="OCPPCommCtrlr"),
                                  variable=m.VariableType(name="OfflineThreshold"),
                                  attribute_value="120")])),
        "csms.Reset": lambda: station().send(m.ResetRequest(type="OnIdle")),
        "csms.RequestStartTransaction": lambda: station().send(m.RequestStartTransactionRequest(
            id_token=m.IdTokenType(id_token=FAST.valid_id_token, type=FAST.valid_id_token_type),
            remote_start_id=7)),
    }
    actions.update({key.replace("__", "."): action for key, action in overrides.items()})
    return ScriptedPrompt(actions)


def first_boot_answered(csms: CSMS, status: str, version: str = "2.0.1") -> None:
    """Configure the CSMS to answer each station's first boot with ``status``, later ones Accepted."""
    m = version_module(version)
    seen: set[str] = set()

    def boot(station: Any, request: Any) -> Any:
        first = station.id not in seen
        seen.add(station.id)
        return m.BootNotificationResponse(current_time=_now(), interval=0 if first else 300,
                                          status=status if first else "Accepted")
    csms.on(m.BootNotificationRequest)(boot)


def _now() -> Any:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc)
