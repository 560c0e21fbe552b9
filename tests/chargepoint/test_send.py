"""One return type per method, and one way down for a transaction message; over loopback sockets."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from support.raw import WAIT, wait_until

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.chargepoint import chargepoint as chargepoint_module
from ocpp_sync.testing import running_csms

pytestmark = pytest.mark.usefixtures("no_leftover_threads")


def now() -> datetime:
    return datetime.now(timezone.utc)


def start16() -> v16.StartTransactionRequest:
    return v16.StartTransactionRequest(connector_id=1, id_tag="TAG", meter_start=0, timestamp=now())


def event201(event_type: str, seq_no: int) -> v201.TransactionEventRequest:
    return v201.TransactionEventRequest(event_type=event_type, timestamp=now(), trigger_reason="Authorized",
                                        seq_no=seq_no, transaction_info=v201.TransactionType(transaction_id="T1"))


@pytest.fixture
def csms() -> Iterator[ocpp_sync.CSMS]:
    with running_csms(versions=("1.6", "2.0.1"), timeout=WAIT) as server:
        yield server


def charge_point(csms: ocpp_sync.CSMS, id: str, version: str = "1.6", **options: Any) -> ocpp_sync.ChargePoint:
    return ocpp_sync.ChargePoint(id, f"ws://127.0.0.1:{csms.port}/ocpp", version=version, timeout=WAIT,
                                 ping_interval=None, **options)


def test_send_offline_raises_queued_with_the_handle_instead_of_returning_it(csms):
    cp = charge_point(csms, "CPRAISE")
    try:
        with pytest.raises(ocpp_sync.Queued) as raised:
            cp.send(start16())
        queued = raised.value
        assert isinstance(queued, ocpp_sync.OCPPError) and not isinstance(queued, ocpp_sync.ConnectionClosed)
        assert queued.code == "Queued" and isinstance(queued.handle, ocpp_sync.QueuedCall)
        assert queued.handle.transaction_id < 0 and not queued.handle.done() and cp.queued == 1
        with pytest.raises(ocpp_sync.ConnectionClosed):  # a message that is not queued, same state
            cp.send(v16.HeartbeatRequest())
        cp.connect()
        answer = queued.handle.result(WAIT)
        assert isinstance(answer, v16.StartTransactionResponse) and answer.id_tag_info.status == "Accepted"
        assert queued.handle.transaction_id == answer.transaction_id > 0
        started = cp.send(start16())  # online: the response, as for any message
        assert isinstance(started, v16.StartTransactionResponse)
    finally:
        cp.close()


def test_send_queued_hands_back_the_handle_online_and_offline(csms):
    cp = charge_point(csms, "CPHANDLE")
    try:
        offline = cp.send_queued(start16())
        assert not offline.done() and offline.transaction_id < 0
        cp.connect()
        assert isinstance(offline.result(WAIT), v16.StartTransactionResponse)
        online = cp.send_queued(start16())
        assert online.done() and online.transaction_id == online.result(0).transaction_id > 0
        with pytest.raises(ValueError):
            cp.send_queued(v16.HeartbeatRequest())
    finally:
        cp.close()


def test_call_raises_queued_too(csms):
    cp = charge_point(csms, "CPDICT")
    try:
        with pytest.raises(ocpp_sync.Queued) as raised:
            cp.call("StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 0,
                                         "timestamp": "2026-01-01T00:00:00Z"})
        cp.connect()
        assert isinstance(raised.value.handle.result(WAIT), v16.StartTransactionResponse)
        answer = cp.call("StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 0,
                                              "timestamp": "2026-01-01T00:00:00Z"})
        assert isinstance(answer, dict) and answer["idTagInfo"]["status"] == "Accepted"
    finally:
        cp.close()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_transaction_message_is_converted_once_and_sent_as_its_payload(csms, monkeypatch, version):
    """to_payload at the public API, nothing converts the request back (queued, fixed up, or offline-flagged)."""
    conversions = []
    real_to_payload = chargepoint_module.to_payload

    def to_payload(message: Any) -> Any:
        conversions.append(type(message).__name__)
        return real_to_payload(message)

    def from_payload(cls: type, payload: Any) -> Any:
        raise AssertionError(f"{cls.__name__} converted back from a payload we built")

    monkeypatch.setattr(chargepoint_module, "to_payload", to_payload)
    monkeypatch.setattr(chargepoint_module, "from_payload", from_payload)
    received = []
    if version == "1.6":
        first, second = start16(), v16.StopTransactionRequest(transaction_id=-1, meter_stop=5, timestamp=now())
    else:
        first, second = event201("Started", 0), event201("Ended", 1)

        @csms.on(v201.TransactionEventRequest)
        def event(station, request):
            received.append((request.seq_no, request.offline))
            return v201.TransactionEventResponse()

    cp = charge_point(csms, f"CPONCE{version}", version=version)
    try:
        start = cp.send_queued(first)  # offline: queued (1.6: a placeholder; 2.x: flagged offline)
        if version == "1.6":
            second = v16.StopTransactionRequest(transaction_id=start.transaction_id, meter_stop=5,
                                                timestamp=now())
        stop = cp.send_async(second)
        cp.connect()
        assert start.result(WAIT) is not None and stop.result(WAIT) is not None
        assert cp.send(first) is not None  # online, straight from this thread
        assert conversions == [type(first).__name__, type(second).__name__, type(first).__name__]
        if version == "2.0.1":
            assert received == [(0, True), (1, True), (0, None)]
    finally:
        cp.close()


def test_a_message_refused_by_a_full_queue_fails_its_handle_and_reaches_the_hook(csms):
    dropped = []
    cp = charge_point(csms, "CPFULL", version="2.0.1", queue_max_messages=1,
                      on_message_dropped=lambda cp, message, exc: dropped.append((message, exc)))
    try:
        kept = cp.send_queued(event201("Started", 0))  # offline: a start is never dropped
        with pytest.raises(ocpp_sync.OCPPError) as refused:
            cp.send(event201("Updated", 1))  # a sample, and no older sample to make room
        assert refused.value.code == "MessageDropped" and not isinstance(refused.value, ocpp_sync.Queued)
        [(message, exc)] = dropped
        assert exc is refused.value and message.seq is None
        assert (message.action, message.payload["seqNo"], message.payload["offline"]) == ("TransactionEvent", 1, True)
        assert not kept.done() and cp.queued == 1
    finally:
        cp.close()


def test_queued_reads_the_file_a_previous_run_left_before_the_first_connect(csms, tmp_path):
    path = tmp_path / "q.sqlite"
    first = charge_point(csms, "CPRESTART", version="2.0.1", queue_path=path)
    first.send_queued(event201("Started", 0))
    first.send_queued(event201("Ended", 1))
    first.close()
    assert first.queued == 2  # closed: read from the file as well
    again = charge_point(csms, "CPRESTART", version="2.0.1", queue_path=path)
    try:
        assert again.queued == 2  # not connected, nothing sent: the file's count
        again.connect()
        assert wait_until(lambda: again.queued == 0)
    finally:
        again.close()
    missing = charge_point(csms, "CPNOFILE", queue_path=tmp_path / "none.sqlite")
    assert missing.queued == 0 and not (tmp_path / "none.sqlite").exists()  # reading creates nothing


@pytest.mark.parametrize("url", ["127.0.0.1:9000/ocpp", "http://127.0.0.1:9000/ocpp", "ws:///ocpp",
                                 "ws://host:port/ocpp"])
def test_a_url_that_is_not_a_websocket_url_says_what_is_expected(url: str) -> None:
    with pytest.raises(ValueError, match="ws://"):
        ocpp_sync.ChargePoint("CP_1", url)


def test_a_misspelt_field_is_named_with_the_right_one() -> None:
    with pytest.raises(ocpp_sync.ValidationError, match="sent as 'chargePointModell'"):
        ocpp_sync.from_payload(v16.BootNotificationRequest,
                               {"chargePointVendor": "ACME", "chargePointModell": "X1"})
    with pytest.raises(ocpp_sync.ValidationError, match="did you mean 'firmwareVersion'"):
        ocpp_sync.from_payload(v16.BootNotificationRequest,
                               {"chargePointVendor": "ACME", "chargePointModel": "X1", "firmwareVersio": "1"})
