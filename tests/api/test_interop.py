"""Interoperability with the PyPI ``ocpp`` package (asyncio, on ``websockets``) as a real peer.

Our charge point against its central system and our CSMS against its charge
point, for 1.6 and 2.0.1, over loopback sockets, with calls both ways and a
CALLERROR each way. Its side runs in one thread with its own event loop; the
test drives both sides from the main thread, every wait bounded.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

ocpp = pytest.importorskip("ocpp")
websockets = pytest.importorskip("websockets")

from ocpp.exceptions import NotSupportedError as OcppNotSupported  # noqa: E402
from ocpp.exceptions import TypeConstraintViolationError  # noqa: E402
from ocpp.routing import on  # noqa: E402
from ocpp.v16 import ChargePoint as OcppPeer16  # noqa: E402
from ocpp.v16 import call as call16  # noqa: E402
from ocpp.v16 import call_result as result16  # noqa: E402
from ocpp.v16.enums import Action as Action16  # noqa: E402
from ocpp.v201 import ChargePoint as OcppPeer201  # noqa: E402
from ocpp.v201 import call as call201  # noqa: E402
from ocpp.v201 import call_result as result201  # noqa: E402
from ocpp.v201.enums import Action as Action201  # noqa: E402

import ocpp_sync  # noqa: E402
from ocpp_sync import v16, v201  # noqa: E402
from ocpp_sync.sim import CentralSystem, StationSimulator  # noqa: E402

WAIT = 10.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class AsyncioThread:
    """An event loop in its own thread; ``run`` executes a coroutine there and waits, bounded."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="interop-asyncio",
                                       daemon=True)
        self.thread.start()

    def run(self, coroutine: Any, timeout: float = WAIT) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        self.loop.close()


@pytest.fixture
def aio():
    runner = AsyncioThread()
    yield runner
    runner.stop()


def ocpp_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("ocpp-")}


def assert_our_threads_gone(before: set[threading.Thread]) -> None:
    """Everything the library started for the test is joined by close()/stop()."""
    assert [t.name for t in ocpp_threads() - before] == []


# -- the ocpp package as the central system --------------------------------------

class OcppCentral16(OcppPeer16):
    """An ``ocpp`` 1.6 central system that records what it was sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []
        self.stopped: dict[int, dict[str, Any]] = {}
        self.ids = itertools.count(100)

    @on(Action16.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any) -> Any:
        self.seen.append("BootNotification")
        return result16.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on(Action16.heartbeat)
    def on_heartbeat(self) -> Any:
        self.seen.append("Heartbeat")
        return result16.Heartbeat(current_time=now())

    @on(Action16.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **kwargs: Any) -> Any:
        self.seen.append(f"StatusNotification:{status}")
        return result16.StatusNotification()

    @on(Action16.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        self.seen.append("Authorize")
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action16.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                 **kwargs: Any) -> Any:
        self.seen.append("StartTransaction")
        return result16.StartTransaction(transaction_id=next(self.ids),
                                         id_tag_info={"status": "Accepted"})

    @on(Action16.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list, **kwargs: Any) -> Any:
        self.seen.append("MeterValues")
        return result16.MeterValues()

    @on(Action16.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any) -> Any:
        self.seen.append("StopTransaction")
        self.stopped[transaction_id] = dict(kwargs, meter_stop=meter_stop)
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})


class OcppCentral201(OcppPeer201):
    """An ``ocpp`` 2.0.1 CSMS that records what it was sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []
        self.events: list[dict[str, Any]] = []

    @on(Action201.boot_notification)
    def on_boot(self, charging_station: dict, reason: str, **kwargs: Any) -> Any:
        self.seen.append("BootNotification")
        return result201.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on(Action201.heartbeat)
    def on_heartbeat(self) -> Any:
        self.seen.append("Heartbeat")
        return result201.Heartbeat(current_time=now())

    @on(Action201.status_notification)
    def on_status(self, timestamp: str, connector_status: str, evse_id: int, connector_id: int,
                  **kwargs: Any) -> Any:
        self.seen.append(f"StatusNotification:{connector_status}")
        return result201.StatusNotification()

    @on(Action201.authorize)
    def on_authorize(self, id_token: dict, **kwargs: Any) -> Any:
        self.seen.append("Authorize")
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on(Action201.transaction_event)
    def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str,
                             seq_no: int, transaction_info: dict, **kwargs: Any) -> Any:
        self.seen.append(f"TransactionEvent:{event_type}")
        self.events.append(dict(kwargs, event_type=event_type, seq_no=seq_no,
                                transaction_info=transaction_info, trigger_reason=trigger_reason))
        if "id_token" in kwargs:
            return result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return result201.TransactionEvent()


class OcppServer:
    """A ``websockets`` server running one ``ocpp`` central system per connection."""

    def __init__(self, aio: AsyncioThread, peer_cls: type, subprotocol: str) -> None:
        self.aio = aio
        self.peers: dict[str, Any] = {}
        self.arrived = threading.Event()

        async def serve(connection: Any) -> None:
            station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
            peer = peer_cls(station_id, connection)
            self.peers[station_id] = peer
            self.arrived.set()
            try:
                await peer.start()
            except websockets.exceptions.ConnectionClosed:
                pass

        async def listen() -> Any:
            return await websockets.serve(serve, "127.0.0.1", 0, subprotocols=[subprotocol])

        self.server = aio.run(listen())
        self.port = self.server.sockets[0].getsockname()[1]

    def peer(self, station_id: str) -> Any:
        assert self.arrived.wait(WAIT), "no station connected to the ocpp server"
        return self.peers[station_id]

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()
            await self.server.wait_closed()

        self.aio.run(shut())


def test_our_charge_point_against_ocpp_central_system_v16(aio: AsyncioThread) -> None:
    before = ocpp_threads()
    server = OcppServer(aio, OcppCentral16, "ocpp1.6")
    sim = StationSimulator(f"ws://127.0.0.1:{server.port}/ocpp", "CP_16", "1.6", timeout=WAIT)
    try:
        sim.connect()
        assert sim.boot().status == "Accepted"
        assert sim.heartbeat().current_time.tzinfo is not None
        sim.status("Available")
        assert sim.authorize()
        transaction_id = sim.start_transaction()
        assert transaction_id == 100
        sim.meter_values()
        sim.meter_values()
        peer = server.peer("CP_16")

        # Calls from the ocpp central system, answered by our handlers.
        config = aio.run(peer.call(call16.GetConfiguration(key=["HeartbeatInterval", "Nope"])))
        assert config.configuration_key == [{"key": "HeartbeatInterval", "readonly": False,
                                             "value": "300"}]
        assert config.unknown_key == ["Nope"]
        changed = aio.run(peer.call(call16.ChangeConfiguration(key="NumberOfConnectors", value="2")))
        assert changed.status == "Rejected"  # read-only
        stop = aio.run(peer.call(call16.RemoteStopTransaction(transaction_id=transaction_id)))
        assert stop.status == "Accepted"
        command = sim.wait_for_command(WAIT)
        assert command is not None and command.name == "remote_stop"
        sim.carry_out(command)

        reset = aio.run(peer.call(call16.Reset(type="Soft")))
        assert reset.status == "Accepted"
        command = sim.wait_for_command(WAIT)
        assert command is not None and command.name == "reset"
        sim.carry_out(command)  # boots again

        # A CALLERROR each way: an action we have no handler for, one it has none for.
        with pytest.raises(OcppNotSupported):   # we have no handler: known, not supported
            aio.run(peer.call(call16.GetLocalListVersion(), suppress=False))
        with pytest.raises(TypeConstraintViolationError):
            aio.run(peer.call(call16.RemoteStopTransaction(transaction_id="one"), suppress=False,
                              skip_schema_validation=True))
        with pytest.raises(ocpp_sync.CallError) as raised:
            sim.cp.send(v16.DataTransferRequest(vendor_id="ocpp_sync"))
        assert raised.value.code == "NotImplemented"   # the ocpp package's code for no handler
        assert sim.cp.connected
    finally:
        sim.close()
        server.close()
    assert peer.seen == ["BootNotification", "Heartbeat", "StatusNotification:Available",
                         "Authorize", "StartTransaction", "MeterValues", "MeterValues",
                         "StopTransaction", "StatusNotification:Available",
                         "BootNotification", "StatusNotification:Available"]
    assert peer.stopped[100]["reason"] == "Remote"
    assert peer.stopped[100]["meter_stop"] == sim.meter_wh > 0
    assert_our_threads_gone(before)


def test_our_charge_point_against_ocpp_central_system_v201(aio: AsyncioThread) -> None:
    before = ocpp_threads()
    server = OcppServer(aio, OcppCentral201, "ocpp2.0.1")
    sim = StationSimulator(f"ws://127.0.0.1:{server.port}/ocpp", "CS_201", "2.0.1", timeout=WAIT)
    try:
        sim.connect()
        assert sim.boot().status == "Accepted"
        sim.heartbeat()
        sim.status("Available")
        assert sim.authorize()
        transaction_id = sim.start_transaction()
        sim.meter_values()
        peer = server.peer("CS_201")

        result = aio.run(peer.call(call201.GetVariables(get_variable_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}},
        ])))
        statuses = [(r["variable"]["name"], r["attribute_status"]) for r in result.get_variable_result]
        assert statuses == [("HeartbeatInterval", "Accepted"), ("Nope", "UnknownVariable")]
        assert result.get_variable_result[0]["attribute_value"] == "300"
        stop = aio.run(peer.call(call201.RequestStopTransaction(transaction_id=transaction_id)))
        assert stop.status == "Accepted"
        command = sim.wait_for_command(WAIT)
        assert command is not None and command.name == "remote_stop"
        sim.carry_out(command)

        reset = aio.run(peer.call(call201.Reset(type="Immediate")))
        assert reset.status == "Accepted"
        command = sim.wait_for_command(WAIT)
        assert command is not None and command.name == "reset"
        sim.carry_out(command)  # boots again

        with pytest.raises(OcppNotSupported):   # we have no handler: known, not supported
            aio.run(peer.call(call201.GetLocalListVersion(), suppress=False))
        with pytest.raises(TypeConstraintViolationError):
            aio.run(peer.call(call201.RequestStopTransaction(transaction_id=5), suppress=False,
                              skip_schema_validation=True))
        with pytest.raises(ocpp_sync.CallError) as raised:
            sim.cp.send(v201.DataTransferRequest(vendor_id="ocpp_sync"))
        assert raised.value.code == "NotImplemented"   # the ocpp package's code for no handler
    finally:
        sim.close()
        server.close()
    assert peer.seen == ["BootNotification", "Heartbeat", "StatusNotification:Available",
                         "Authorize", "TransactionEvent:Started", "TransactionEvent:Updated",
                         "TransactionEvent:Ended", "StatusNotification:Available",
                         "BootNotification", "StatusNotification:Available"]
    assert [e["seq_no"] for e in peer.events] == [0, 1, 2]
    assert {e["transaction_info"]["transaction_id"] for e in peer.events} == {transaction_id}
    assert peer.events[-1]["transaction_info"]["stopped_reason"] == "Remote"
    assert_our_threads_gone(before)


# -- the ocpp package as the charge point ----------------------------------------

class OcppStation16(OcppPeer16):
    """An ``ocpp`` 1.6 charge point answering a few CSMS calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote_stops: list[int] = []

    @on(Action16.get_configuration)
    def on_get_configuration(self, key: Any = None, **kwargs: Any) -> Any:
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "60"}])

    @on(Action16.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        self.remote_stops.append(transaction_id)
        return result16.RemoteStopTransaction(status="Accepted")


class OcppStation201(OcppPeer201):
    """An ``ocpp`` 2.0.1 charging station answering a few CSMS calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote_stops: list[str] = []

    @on(Action201.get_variables)
    def on_get_variables(self, get_variable_data: list, **kwargs: Any) -> Any:
        return result201.GetVariables(get_variable_result=[
            {"attribute_status": "Accepted", "attribute_value": "60",
             "component": item["component"], "variable": item["variable"]}
            for item in get_variable_data])

    @on(Action201.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **kwargs: Any) -> Any:
        self.remote_stops.append(transaction_id)
        return result201.RequestStopTransaction(status="Accepted")


class OcppClient:
    """An ``ocpp`` charge point connected to our CSMS, its message loop a task on ``aio``."""

    def __init__(self, aio: AsyncioThread, peer_cls: type, url: str, station_id: str,
                 subprotocol: str) -> None:
        self.aio = aio

        async def open_() -> Any:
            self.ws = await websockets.connect(url, subprotocols=[subprotocol])
            self.peer = peer_cls(station_id, self.ws, response_timeout=WAIT)
            self.task = asyncio.ensure_future(self.peer.start())

        aio.run(open_())
        assert self.ws.subprotocol == subprotocol

    def call(self, payload: Any, **kwargs: Any) -> Any:
        return self.aio.run(self.peer.call(payload, **kwargs))

    def close(self) -> None:
        async def shut() -> None:
            await self.ws.close()
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

        self.aio.run(shut())


def start_csms(version: str) -> Any:
    csms = ocpp_sync.CSMS(versions=(version,), timeout=WAIT)
    central = CentralSystem(heartbeat_interval=60)
    central.install(csms)
    csms.start("127.0.0.1", 0)
    return csms, central


def test_our_csms_against_ocpp_charge_point_v16(aio: AsyncioThread) -> None:
    before = ocpp_threads()
    csms, central = start_csms("1.6")
    client = OcppClient(aio, OcppStation16, f"ws://127.0.0.1:{csms.port}/ocpp/PY_16", "PY_16",
                        "ocpp1.6")
    try:
        boot = client.call(call16.BootNotification(charge_point_vendor="pyocpp",
                                                   charge_point_model="asyncio"))
        assert (boot.status, boot.interval) == ("Accepted", 60)
        assert client.call(call16.Heartbeat()).current_time
        client.call(call16.StatusNotification(connector_id=1, error_code="NoError",
                                              status="Available"))
        assert client.call(call16.Authorize(id_tag="TAG")).id_tag_info["status"] == "Accepted"
        started = client.call(call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=10,
                                                      timestamp=now()))
        transaction_id = started.transaction_id
        assert transaction_id == 1
        client.call(call16.MeterValues(connector_id=1, transaction_id=transaction_id, meter_value=[
            {"timestamp": now(), "sampled_value": [{"value": "510", "unit": "Wh"}]}]))

        station = csms.wait_for_station("PY_16", timeout=WAIT)
        assert station.version == "1.6"
        config = station.send(v16.GetConfigurationRequest(key=["HeartbeatInterval"]))
        assert config.configuration_key == [v16.KeyValue(key="HeartbeatInterval", readonly=False,
                                                         value="60")]
        stop = station.send(v16.RemoteStopTransactionRequest(transaction_id=transaction_id))
        assert stop.status == v16.RemoteStartStopStatus.ACCEPTED
        assert client.peer.remote_stops == [transaction_id]
        client.call(call16.StopTransaction(meter_stop=900, timestamp=now(),
                                           transaction_id=transaction_id, reason="Remote"))

        # A CALLERROR each way.
        with pytest.raises(ocpp_sync.CallError) as raised:
            station.send(v16.ClearCacheRequest())
        assert raised.value.code == "NotImplemented"   # the ocpp package's code for no handler
        with pytest.raises(OcppNotSupported):   # we have no handler: known, not supported
            client.call(call16.SignCertificate(csr="x" * 10), suppress=False)
        # A payload that fails validation gets the 1.6 code, in a spelling ocpp knows.
        with pytest.raises(TypeConstraintViolationError):
            client.call(call16.StatusNotification(connector_id="one", error_code="NoError",
                                                  status="Available"),
                        suppress=False, skip_schema_validation=True)
        assert station.connected
    finally:
        client.close()
        csms.stop()
    assert central.transaction("PY_16", transaction_id) == {
        "id_tag": "TAG", "meter_start": 10, "meter_last": 900, "meter_stop": 900, "reason": "Remote"}
    assert central.counts[("station", "MeterValues")] == 1
    assert_our_threads_gone(before)


def test_our_csms_against_ocpp_charge_point_v201(aio: AsyncioThread) -> None:
    before = ocpp_threads()
    csms, central = start_csms("2.0.1")
    client = OcppClient(aio, OcppStation201, f"ws://127.0.0.1:{csms.port}/PY_201", "PY_201",
                        "ocpp2.0.1")
    token = {"id_token": "TOKEN", "type": "ISO14443"}
    try:
        boot = client.call(call201.BootNotification(
            charging_station={"model": "asyncio", "vendor_name": "pyocpp"}, reason="PowerUp"))
        assert boot.status == "Accepted"
        client.call(call201.Heartbeat())
        client.call(call201.StatusNotification(timestamp=now(), connector_status="Available",
                                               evse_id=1, connector_id=1))
        assert client.call(call201.Authorize(id_token=token)).id_token_info["status"] == "Accepted"

        def event(event_type: str, seq_no: int, energy: float, trigger: str, **extra: Any) -> Any:
            return client.call(call201.TransactionEvent(
                event_type=event_type, timestamp=now(), trigger_reason=trigger, seq_no=seq_no,
                meter_value=[{"timestamp": now(), "sampled_value": [{"value": energy}]}], **extra))

        started = event("Started", 0, 100, "Authorized", id_token=token,
                        transaction_info={"transaction_id": "TX-1"}, evse={"id": 1, "connector_id": 1})
        assert started.id_token_info == {"status": "Accepted"}
        event("Updated", 1, 600, "MeterValuePeriodic", transaction_info={"transaction_id": "TX-1"})

        station = csms.wait_for_station("PY_201", timeout=WAIT)
        assert station.version == "2.0.1"
        got = station.send(v201.GetVariablesRequest(get_variable_data=[v201.GetVariableDataType(
            component=v201.ComponentType(name="OCPPCommCtrlr"),
            variable=v201.VariableType(name="HeartbeatInterval"))]))
        assert [r.attribute_value for r in got.get_variable_result] == ["60"]
        stop = station.send(v201.RequestStopTransactionRequest(transaction_id="TX-1"))
        assert stop.status == v201.RequestStartStopStatusEnumType.ACCEPTED
        assert client.peer.remote_stops == ["TX-1"]
        event("Ended", 2, 700, "RemoteStop",
              transaction_info={"transaction_id": "TX-1", "stopped_reason": "Remote"})

        with pytest.raises(ocpp_sync.CallError) as raised:
            station.send(v201.ClearCacheRequest())
        assert raised.value.code == "NotImplemented"   # the ocpp package's code for no handler
        with pytest.raises(OcppNotSupported):   # we have no handler: known, not supported
            client.call(call201.Get15118EVCertificate(iso15118_schema_version="x", action="Install",
                                                      exi_request="x"), suppress=False)
        with pytest.raises(TypeConstraintViolationError):
            client.call(call201.StatusNotification(timestamp=now(), connector_status="Available",
                                                   evse_id="one", connector_id=1),
                        suppress=False, skip_schema_validation=True)
        assert station.connected
    finally:
        client.close()
        csms.stop()
    record = central.transaction("PY_201", "TX-1")
    assert (record["meter_start"], record["meter_stop"], record["reason"]) == (100, 700, "Remote")
    assert record["id_tag"] == "TOKEN"
    assert_our_threads_gone(before)


# -- subprotocol negotiation with the other stack --------------------------------

def test_ocpp_clients_get_our_preferred_common_subprotocol_or_a_refusal(aio: AsyncioThread) -> None:
    before = ocpp_threads()
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=WAIT)
    csms.start("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{csms.port}/NEGOTIATE"

    async def offer(subprotocols: list[str]) -> str | None:
        async with websockets.connect(url, subprotocols=subprotocols) as ws:
            return ws.subprotocol

    async def refused(subprotocols: list[str]) -> int | None:
        async with websockets.connect(url, subprotocols=subprotocols) as ws:
            assert ws.subprotocol is None
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code if closed.value.rcvd is not None else None

    try:
        assert aio.run(offer(["ocpp1.6", "ocpp2.0.1"])) == "ocpp2.0.1"
        assert aio.run(offer(["ocpp1.6", "ocpp2.1"])) == "ocpp1.6"
        # OCPP-J 1.6 section 3.1.2: no common subprotocol is answered with a 101 that names none,
        # and the connection is closed at once.
        assert aio.run(refused(["ocpp2.1"])) == 1002
    finally:
        csms.stop()
    assert_our_threads_gone(before)


def test_our_charge_point_refused_by_an_ocpp_server_of_another_version(aio: AsyncioThread) -> None:
    before = ocpp_threads()
    server = OcppServer(aio, OcppCentral201, "ocpp2.0.1")
    cp = ocpp_sync.ChargePoint("WRONG", f"ws://127.0.0.1:{server.port}/", version="1.6")
    try:
        with pytest.raises(ConnectionError) as refused:
            cp.connect()
        assert getattr(refused.value, "status", None) == 400
        assert not cp.connected
    finally:
        cp.close()
        server.close()
    assert_our_threads_gone(before)


def test_calls_in_both_directions_at_once_with_an_ocpp_charge_point(aio: AsyncioThread) -> None:
    """Each side has a call outstanding while it answers the other's: neither may stall."""
    before = ocpp_threads()
    csms, central = start_csms("1.6")
    client = OcppClient(aio, OcppStation16, f"ws://127.0.0.1:{csms.port}/CROSS", "CROSS", "ocpp1.6")
    try:
        client.call(call16.BootNotification(charge_point_vendor="pyocpp", charge_point_model="x"))
        station = csms.wait_for_station("CROSS", timeout=WAIT)
        ours = [station.send_async(v16.GetConfigurationRequest(), timeout=WAIT) for _ in range(5)]

        async def theirs() -> list[Any]:
            return await asyncio.gather(*(client.peer.call(call16.Heartbeat()) for _ in range(5)))

        answers = aio.run(theirs())
        assert all(answer.current_time for answer in answers)
        for future in ours:
            assert future.result(WAIT).configuration_key[0].key == "HeartbeatInterval"
    finally:
        client.close()
        csms.stop()
    assert central.counts[("station", "Heartbeat")] == 5
    assert_our_threads_gone(before)
