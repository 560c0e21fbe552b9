"""Handlers that cannot be called the way the library calls them are refused at registration.

Before, a CSMS handler with one parameter was accepted and failed at every call
(`boot() takes 1 positional argument but 2 were given`), the station getting an
InternalError for a mistake visible when the handler was registered.
"""
from __future__ import annotations

import functools
import re
from typing import Any

import pytest

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.testing import connected_charge_point, running_csms

CSMS_EXPECTED = "CSMS handlers are called as handler(station, request): "
CP_EXPECTED = "charge point handlers are called as handler(request): "


def boot_answer(*_: Any) -> Any:
    return v16.BootNotificationResponse(current_time="2026-01-01T00:00:00Z", interval=300,
                                        status="Accepted")


@pytest.fixture
def csms() -> ocpp_sync.CSMS:
    return ocpp_sync.CSMS(versions=("1.6",))


@pytest.fixture
def cp() -> ocpp_sync.ChargePoint:
    return ocpp_sync.ChargePoint("CP_SIG", "ws://127.0.0.1:1/ocpp", version="1.6")


def boot(request: Any) -> Any: ...
def boot_extra(station: Any, request: Any, extra: Any) -> Any: ...
def boot_keyword(station: Any, request: Any, *, token: str) -> Any: ...
async def boot_async(station: Any, request: Any) -> Any: ...


@pytest.mark.parametrize("handler, message", [
    (boot, "boot(request) takes 1 positional argument"),
    (lambda: None, "<lambda>() takes 0 positional arguments"),
    (boot_extra, "boot_extra(station, request, extra) requires 3 positional arguments"),
    (boot_keyword, "boot_keyword(station, request, *, token) requires the keyword argument 'token'"),
    (functools.partial(boot_extra, 1, 2), "functools.partial(boot_extra)(extra) takes 1 positional argument"),
], ids=["one-parameter", "none", "three", "keyword-only", "partial"])
def test_a_csms_handler_that_cannot_take_station_and_request_is_refused(
        csms: ocpp_sync.CSMS, handler: Any, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        csms.on(v16.BootNotificationRequest)(handler)
    assert str(caught.value) == CSMS_EXPECTED + message
    assert v16.BootNotificationRequest not in csms._handlers  # nothing was registered


def test_a_refused_handler_leaves_the_previous_one_in_place(csms: ocpp_sync.CSMS) -> None:
    csms.on(v16.BootNotificationRequest)(boot_answer)
    with pytest.raises(TypeError):
        csms.on(v16.BootNotificationRequest)(boot)
    assert csms._handlers[v16.BootNotificationRequest] is boot_answer


def test_async_and_non_callable_handlers_are_refused(csms: ocpp_sync.CSMS) -> None:
    with pytest.raises(TypeError, match="boot_async is an async function"):
        csms.on(v16.BootNotificationRequest)(boot_async)
    with pytest.raises(TypeError, match="'not a function' is not callable"):
        csms.on(v16.BootNotificationRequest)("not a function")


class Handlers:
    def boot(self, station: Any, request: Any) -> Any:
        return boot_answer()

    def __call__(self, station: Any, request: Any) -> Any:
        return boot_answer()


def prefixed(prefix: str, station: Any, request: Any) -> Any:
    return boot_answer()


@pytest.mark.parametrize("handler", [
    lambda station, request: None,
    lambda *args: None,
    lambda station, *rest, **options: None,
    lambda station, request, extra=None, *, flag=False: None,
    functools.partial(prefixed, "p"),
    Handlers().boot,
    Handlers(),
    max,  # a builtin whose signature cannot be read: passes unchecked
], ids=["two", "varargs", "one-and-varargs", "defaults", "partial", "bound-method", "__call__",
        "builtin"])
def test_every_way_of_taking_station_and_request_is_accepted(csms: ocpp_sync.CSMS,
                                                             handler: Any) -> None:
    assert csms.on(v16.BootNotificationRequest)(handler) is handler


def test_a_charge_point_handler_takes_the_request_only(cp: ocpp_sync.ChargePoint) -> None:
    def reset(station: Any, request: Any) -> Any: ...

    with pytest.raises(TypeError) as caught:
        cp.on(v16.ResetRequest)(reset)
    assert str(caught.value) == CP_EXPECTED + "reset(station, request) requires 2 positional arguments"
    for handler in [lambda request: None, lambda *a: None, functools.partial(lambda x, request: None, 1)]:
        assert cp.on(v16.ResetRequest)(handler) is handler


def test_on_group_checks_each_method(cp: ocpp_sync.ChargePoint, csms: ocpp_sync.CSMS) -> None:
    class Station:
        def on_reset(self) -> Any: ...

    class Backend:
        def on_boot_notification(self, request: Any) -> Any: ...

    with pytest.raises(TypeError, match="^" + re.escape(CP_EXPECTED) + r"Station\.on_reset\(\) takes 0"):
        cp.on_group(Station())
    with pytest.raises(TypeError, match=r"Backend\.on_boot_notification\(request\) takes 1 positional"):
        csms.on_group(Backend())


def test_on_request_callbacks_are_checked(csms: ocpp_sync.CSMS) -> None:
    with pytest.raises(TypeError) as caught:
        csms.on_request(lambda request: None)
    assert str(caught.value) == ("on_request callbacks are called as callback(station, request): "
                                 "<lambda>(request) takes 1 positional argument")


def test_connect_and_disconnect_callbacks_are_checked(csms: ocpp_sync.CSMS) -> None:
    with pytest.raises(TypeError) as caught:
        csms.on_connect(lambda: None)
    assert str(caught.value) == ("on_connect callbacks are called as callback(station): "
                                 "<lambda>() takes 0 positional arguments")
    with pytest.raises(TypeError, match=r"^on_disconnect callbacks are called as callback\(station\): "):
        csms.on_disconnect = lambda station, reason: None
    csms.on_disconnect = None  # still clears them
    assert csms.on_connect(print) is print


def test_cluster_handlers_are_checked_before_they_are_wrapped() -> None:
    """Cluster.on wraps the handler in one that takes (station, request): the check must see the user's."""
    pytest.importorskip("redis")
    from ocpp_sync.cluster import Cluster

    cluster = Cluster("redis://127.0.0.1:1/0", csms=ocpp_sync.CSMS(versions=("1.6",)), node_id="n1")
    with pytest.raises(TypeError, match="^" + re.escape(CSMS_EXPECTED) + r"boot\(request\) takes 1"):
        cluster.on(v16.BootNotificationRequest)(boot)


class Back:
    """A bound method and a callable object, as a back office might register them."""

    def heartbeat(self, station: Any, request: Any) -> Any:
        return v201.HeartbeatResponse(current_time="2026-01-01T00:00:00Z")

    def __call__(self, station: Any, request: Any) -> Any:
        return v201.AuthorizeResponse(id_token_info=v201.IdTokenInfoType(status="Accepted"))


def status_answer(note: str, station: Any, request: Any, *rest: Any, **options: Any) -> Any:
    return v201.StatusNotificationResponse()


def reset_answer(status: str, request: Any) -> Any:
    return v201.ResetResponse(status=status)


def test_accepted_forms_are_really_called_that_way() -> None:
    """Over loopback: a bound method, a callable object and partials answer real calls."""
    back = Back()
    with running_csms(("2.0.1",), accept_all=False) as csms:
        csms.on(v201.HeartbeatRequest)(back.heartbeat)
        csms.on(v201.AuthorizeRequest)(back)
        csms.on(v201.StatusNotificationRequest)(functools.partial(status_answer, "note"))
        with connected_charge_point(csms, "2.0.1") as (cp, station):
            cp.on(v201.ResetRequest)(functools.partial(reset_answer, "Accepted"))
            assert cp.send(v201.HeartbeatRequest()).current_time
            assert isinstance(cp.send(v201.StatusNotificationRequest(
                timestamp="2026-01-01T00:00:00Z", connector_status="Available", evse_id=1,
                connector_id=1)), v201.StatusNotificationResponse)
            assert cp.send(v201.AuthorizeRequest(id_token=v201.IdTokenType(
                id_token="T", type="ISO14443"))).id_token_info.status == "Accepted"
            assert station.send(v201.ResetRequest(type="Immediate")).status == "Accepted"
