"""The 1.6 configuration store through a real CSMS on loopback: what the CSMS sends, what it gets back."""
from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from typing import Any

import pytest
from support.raw import WAIT

from ocpp_sync.csms.csms import Station
from ocpp_sync.errors import CallError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.configuration import ConfigurationStore
from ocpp_sync.testing import connected_charge_point, running_csms

m = version_module("1.6")
SECRET = "wire-secret-0123456789"


@pytest.fixture
def linked() -> Iterator[tuple[ConfigurationStore, Station]]:
    store = ConfigurationStore(["SmartCharging", "Security"], values={"NumberOfConnectors": 2,
                                                                      "GetConfigurationMaxKeys": 5},
                               optional=["AuthorizationKey", "SecurityProfile"])
    with running_csms(("1.6",), timeout=WAIT) as csms, \
            connected_charge_point(csms, "1.6", timeout=WAIT) as (cp, station):
        store.attach(cp)
        yield store, station


@pytest.mark.usefixtures("no_leftover_threads")
def test_get_configuration_answers_every_key_or_those_asked(linked: tuple[ConfigurationStore, Station]) -> None:
    store, station = linked
    every = station.send(m.GetConfigurationRequest())
    assert [k.key for k in every.configuration_key] == [
        d.name for d in store.definitions() if d.name != "AuthorizationKey"]
    assert every.unknown_key is None
    some = station.send(m.GetConfigurationRequest(key=["NumberOfConnectors", "Unheard", "AuthorizationKey"]))
    assert [(k.key, k.readonly, k.value) for k in some.configuration_key] == [("NumberOfConnectors", True, "2")]
    assert some.unknown_key == ["Unheard", "AuthorizationKey"]
    nothing = station.send(m.GetConfigurationRequest(key=["Unheard"]))
    assert nothing.configuration_key is None and nothing.unknown_key == ["Unheard"]


@pytest.mark.usefixtures("no_leftover_threads")
def test_more_keys_than_the_maximum_get_a_call_error(linked: tuple[ConfigurationStore, Station]) -> None:
    _, station = linked
    with pytest.raises(CallError) as refused:
        station.send(m.GetConfigurationRequest(key=[f"Key{i}" for i in range(6)]))
    assert refused.value.code == "OccurenceConstraintViolation"  # the 1.6 spelling


@pytest.mark.usefixtures("no_leftover_threads")
def test_change_configuration_answers_and_the_application_hears_of_it(
        linked: tuple[ConfigurationStore, Station]) -> None:
    store, station = linked
    heard: queue.Queue[tuple[str, Any]] = queue.Queue()
    store.on_change("HeartbeatInterval", lambda key, value: heard.put((key, value)))

    def change(key: str, value: str) -> str:
        return str(station.send(m.ChangeConfigurationRequest(key=key, value=value)).status)

    assert change("HeartbeatInterval", "42") == "Accepted"
    assert heard.get(timeout=WAIT) == ("HeartbeatInterval", 42)
    assert change("HeartbeatInterval", "often") == "Rejected"
    assert change("NumberOfConnectors", "3") == "Rejected"
    assert change("Unheard", "1") == "NotSupported"
    assert change("SecurityProfile", "1") == "Accepted"
    assert change("SecurityProfile", "0") == "Rejected"
    reply = station.send(m.GetConfigurationRequest(key=["HeartbeatInterval", "SecurityProfile"]))
    assert [k.value for k in reply.configuration_key] == ["42", "1"]
    assert heard.empty()  # the refused values were not announced


@pytest.mark.usefixtures("no_leftover_threads")
def test_the_authorization_key_crosses_the_wire_but_not_the_logs(
        linked: tuple[ConfigurationStore, Station], caplog: pytest.LogCaptureFixture) -> None:
    store, station = linked
    with caplog.at_level(logging.DEBUG, logger="ocpp_sync"):
        assert station.send(m.ChangeConfigurationRequest(key="AuthorizationKey", value=SECRET)).status == "Accepted"
        every = station.send(m.GetConfigurationRequest())
    assert store.text("AuthorizationKey") == SECRET
    assert "AuthorizationKey" not in [k.key for k in every.configuration_key]
    assert "ChangeConfiguration" in caplog.text and SECRET not in caplog.text
