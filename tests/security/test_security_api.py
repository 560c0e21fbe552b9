"""The security profiles through the public API: CSMS(...) options and ChargePoint(password=,
ssl_context=), strict station ids by default, the bad-message budget, and the client
certificate reaching the application. Real loopback sockets; certificates made by trustme.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import websocket

import ocpp_sync
from ocpp_sync import security, v16
from ocpp_sync.security import Reason, SecurityEvent

WAIT = 10.0
PASSWORD = "pa:ss wörd"  # a ':' and non-ASCII: the split is at the first ':' and bytes are exact


class Events:
    """A security event hook that a test can wait on."""

    def __init__(self) -> None:
        self.items: list[SecurityEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: SecurityEvent) -> None:
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def wait_for(self, reason: Reason, count: int = 1) -> SecurityEvent:
        """The first event for ``reason`` once there are ``count`` of them.

        The listener reports a refusal after its answer is out, so a client may
        see the answer before the event exists.
        """
        with self._changed:
            assert self._changed.wait_for(
                lambda: sum(e.reason is reason for e in self.items) >= count, WAIT), self.items
            return next(e for e in self.items if e.reason is reason)

    def of(self, reason: Reason) -> list[SecurityEvent]:
        with self._changed:
            return [e for e in self.items if e.reason is reason]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def start_csms() -> Iterator[Any]:
    """start_csms(**options) -> a started CSMS on a free loopback port, stopped after the test."""
    started: list[ocpp_sync.CSMS] = []

    def start(*, listen: dict[str, Any] | None = None, **options: Any) -> ocpp_sync.CSMS:
        csms = ocpp_sync.CSMS(**{"versions": ("1.6",), "timeout": WAIT, **options})
        started.append(csms)
        csms.start("127.0.0.1", 0, **(listen or {}))
        return csms

    yield start
    for csms in started:
        csms.stop()


def heartbeat_handlers(csms: ocpp_sync.CSMS) -> None:
    @csms.on(v16.HeartbeatRequest)
    def heartbeat(station: Any, request: Any) -> Any:
        return v16.HeartbeatResponse(current_time="2026-01-01T00:00:00Z")


class Pki:
    """A CA, the CSMS's certificate for 127.0.0.1 and station certificates, as files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.server = self._leaf("server", self.ca.issue_cert("127.0.0.1"))

    def _write(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def _leaf(self, name: str, cert: trustme.LeafCert) -> tuple[str, str]:
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        return (self._write(f"{name}.pem", chain),
                self._write(f"{name}.key", cert.private_key_pem.bytes()))

    def station(self, station_id: str) -> tuple[str, str]:
        return self._leaf(f"station-{station_id}",
                          self.ca.issue_cert("station.invalid", common_name=station_id))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


# -- profile 1 ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_threads")
def test_profile1_password_on_both_sides(start_csms: Any, events: Events,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    csms = start_csms(authenticate=security.simple_authenticator({"CP_P1": PASSWORD}),
                      on_security_event=events)
    heartbeat_handlers(csms)
    cp = ocpp_sync.ChargePoint("CP_P1", f"ws://127.0.0.1:{csms.port}/ocpp", timeout=WAIT,
                               password=PASSWORD, reconnect=False)
    assert PASSWORD not in repr(cp)
    with cp:
        assert cp.send(v16.HeartbeatRequest()).current_time
        assert csms.wait_for_station("CP_P1", WAIT).request.certificate is None
    assert events.items == []
    authorization = security.basic_authorization("CP_P1", PASSWORD).split(" ", 1)[1]
    assert PASSWORD not in caplog.text and authorization not in caplog.text


@pytest.mark.usefixtures("no_leftover_threads")
def test_profile1_wrong_password_is_401_and_not_retried(start_csms: Any, events: Events) -> None:
    csms = start_csms(authenticate=security.simple_authenticator({"CP_P1": PASSWORD}),
                      on_security_event=events)
    url = f"ws://127.0.0.1:{csms.port}/ocpp"
    cp = ocpp_sync.ChargePoint("CP_P1", url, password="guess")
    with pytest.raises(ocpp_sync.HandshakeError) as info:
        cp.connect()
    assert info.value.status == 401 and info.value.permanent
    assert not cp.connected
    assert not any(t.name == "ocpp-CP_P1-reconnect" for t in threading.enumerate())
    # Retrying from the start: the 401 ends the retries at once instead of repeating.
    eager = ocpp_sync.ChargePoint("CP_P1", url, password="guess", retry_first_connect=True,
                                  backoff=ocpp_sync.BackOff(wait_minimum=0.01, random_range=0.0))
    try:
        with pytest.raises(ocpp_sync.HandshakeError) as info:
            eager.connect()
        assert info.value.status == 401
    finally:
        eager.close()
        cp.close()
    events.wait_for(Reason.BAD_CREDENTIALS, count=2)
    assert len(events.of(Reason.BAD_CREDENTIALS)) == 2
    assert all(e.station_id == "CP_P1" and e.status == 401 for e in events.items)


# -- profile 2 ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_threads")
def test_profile2_tls_and_password(start_csms: Any, events: Events, pki: Pki) -> None:
    csms = start_csms(ssl_context=security.server_ssl_context(*pki.server),
                      authenticate=security.simple_authenticator({"CP_P2": PASSWORD}),
                      on_security_event=events)
    heartbeat_handlers(csms)
    url = f"wss://127.0.0.1:{csms.port}/ocpp"
    context = security.client_ssl_context(cafile=pki.ca_file)
    with ocpp_sync.ChargePoint("CP_P2", url, timeout=WAIT, password=PASSWORD,
                               ssl_context=context, reconnect=False) as cp:
        assert cp.send(v16.HeartbeatRequest()).current_time
    with pytest.raises(ocpp_sync.HandshakeError) as info:
        ocpp_sync.ChargePoint("CP_P2", url, password="guess", ssl_context=context,
                              reconnect=False).connect()
    assert info.value.status == 401
    assert events.wait_for(Reason.BAD_CREDENTIALS).station_id == "CP_P2"
    # A plain ws:// client cannot get past the TLS listener.
    with pytest.raises(ocpp_sync.HandshakeError):
        ocpp_sync.ChargePoint("CP_P2", f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD,
                              reconnect=False, connect_timeout=WAIT).connect()
    events.wait_for(Reason.TLS_FAILED)


def test_ssl_context_and_sslopt_together_are_refused(pki: Pki) -> None:
    context = security.client_ssl_context(cafile=pki.ca_file)
    cp = ocpp_sync.ChargePoint("CP_P2", "wss://127.0.0.1:1/ocpp", ssl_context=context,
                               sslopt={"context": context})
    with pytest.raises(ValueError):
        cp.connect()
    assert not cp.connected


# -- profile 3 ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_threads")
def test_profile3_certificate_reaches_the_application(start_csms: Any, events: Events,
                                                      pki: Pki) -> None:
    csms = start_csms(versions=("2.0.1",),
                      ssl_context=security.server_ssl_context(
                          *pki.server, cafile=pki.ca_file, require_client_certificate=True),
                      authenticate=security.simple_authenticator(require_certificate=True),
                      on_security_event=events)
    certfile, keyfile = pki.station("CP_P3")
    context = security.client_ssl_context(cafile=pki.ca_file, certfile=certfile, keyfile=keyfile)
    url = f"wss://127.0.0.1:{csms.port}/ocpp"
    with ocpp_sync.ChargePoint("CP_P3", url, version="2.0.1", timeout=WAIT, ssl_context=context,
                               reconnect=False):
        station = csms.wait_for_station("CP_P3", WAIT)
        assert security.certificate_matches_station(station.request.certificate, "CP_P3")
        assert "certificate=" not in repr(station.request)  # kept out of reprs and logs
    # The same valid certificate under another station's id.
    with pytest.raises(ocpp_sync.HandshakeError) as info:
        ocpp_sync.ChargePoint("CP_OTHER", url, version="2.0.1", ssl_context=context,
                              reconnect=False).connect()
    assert info.value.status == 401
    assert events.wait_for(Reason.BAD_CREDENTIALS).station_id == "CP_OTHER"


# -- station ids -------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_threads")
def test_strict_station_ids_by_default(start_csms: Any, events: Events) -> None:
    csms = start_csms(on_security_event=events)
    with pytest.raises(ocpp_sync.HandshakeError) as info:
        ocpp_sync.ChargePoint("CP/1", f"ws://127.0.0.1:{csms.port}/ocpp", reconnect=False).connect()
    assert info.value.status == 400 and info.value.permanent
    assert events.wait_for(Reason.INVALID_STATION_ID).status == 400
    assert csms.stations == {}


@pytest.mark.usefixtures("no_leftover_threads")
def test_start_options_override_the_csms_options(start_csms: Any) -> None:
    csms = start_csms(listen={"strict_station_ids": False})
    with ocpp_sync.ChargePoint("CP/1 ü", f"ws://127.0.0.1:{csms.port}/ocpp", reconnect=False):
        assert csms.wait_for_station("CP/1 ü", WAIT).id == "CP/1 ü"


# -- the bad-message budget ----------------------------------------------------------------------


class RawStation:
    """A websocket-client socket that writes whatever the test wants and sees the close code."""

    def __init__(self, port: int, station_id: str) -> None:
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/{station_id}",
                                              subprotocols=["ocpp1.6"], timeout=WAIT)

    def exchange(self, text: str) -> list[Any]:
        self.ws.send(text)
        opcode, data = self.ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
        return json.loads(data)

    def close_code(self) -> int:
        """Wait for the server's close frame; its status code."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big")

    def close(self) -> None:
        self.ws.close(timeout=WAIT)


@pytest.mark.usefixtures("no_leftover_threads")
def test_bad_messages_in_a_row_close_with_1008(start_csms: Any, events: Events) -> None:
    csms = start_csms(max_bad_messages=3, on_security_event=events)
    heartbeat_handlers(csms)
    gone = threading.Event()
    csms.on_disconnect = lambda station: gone.set()
    raw = RawStation(csms.port, "CP_RAW")
    try:
        for _ in range(2):
            assert raw.exchange("not json")[0] == 4
        # A frame that parses (here a call) resets the count.
        assert raw.exchange(json.dumps([2, "ok-1", "Heartbeat", {}]))[0] == 3
        for _ in range(2):
            assert raw.exchange('{"not": "a list"}')[0] == 4
        assert events.items == [] and not gone.is_set()
        assert raw.exchange("[")[0] == 4   # the third in a row is still answered, then the close
        assert raw.close_code() == 1008
    finally:
        raw.close()
    event = events.wait_for(Reason.BAD_MESSAGES)
    assert (event.station_id, event.close_code) == ("CP_RAW", 1008)
    assert event.remote_address.startswith("127.0.0.1:")
    assert "3" in event.detail
    assert gone.wait(WAIT)


@pytest.mark.usefixtures("no_leftover_threads")
def test_binary_messages_count_as_bad_messages(start_csms: Any, events: Events) -> None:
    """OCPP-J is text only: a peer sending binary frames forever must not hold a connection."""
    csms = start_csms(max_bad_messages=3, on_security_event=events)
    heartbeat_handlers(csms)
    raw = RawStation(csms.port, "CP_RAW")
    try:
        for _ in range(2):
            raw.ws.send_binary(b"\x00\x01")
        # Nothing answers a binary message (it has no id), and a call after them is answered.
        assert raw.exchange(json.dumps([2, "ok-1", "Heartbeat", {}]))[0] == 3
        for _ in range(3):
            raw.ws.send_binary(b"[2, \"id\", \"Heartbeat\", {}]")   # JSON, but not text
        assert raw.close_code() == 1008
    finally:
        raw.close()
    event = events.wait_for(Reason.BAD_MESSAGES)
    assert (event.station_id, event.close_code) == ("CP_RAW", 1008)


@pytest.mark.usefixtures("no_leftover_threads")
def test_no_bad_message_budget(start_csms: Any, events: Events) -> None:
    csms = start_csms(max_bad_messages=None, on_security_event=events)
    raw = RawStation(csms.port, "CP_RAW")
    try:
        for _ in range(25):
            assert raw.exchange("garbage")[0] == 4
        assert events.items == []
        assert csms.wait_for_station("CP_RAW", WAIT).connected
    finally:
        raw.close()


def test_bad_message_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ocpp_sync.CSMS(max_bad_messages=0)
