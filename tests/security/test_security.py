"""Security profiles 1-3: credential parsing, station ids, hooks, TLS contexts, and real handshakes.

Certificates are made at test time with trustme; every network test runs over loopback sockets.
"""
from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from support.background import ctrl_c_works

from ocpp_sync import security
from ocpp_sync.runtime.listener import WebSocketServer
from ocpp_sync.security import (
    BasicCredentials,
    Reason,
    Refused,
    basic_authorization,
    certificate_matches_station,
    check_handshake,
    check_known_station,
    check_password,
    client_ssl_context,
    parse_basic_authorization,
    password_from_headers,
    server_ssl_context,
    simple_authenticator,
    validate_station_id,
)
from ocpp_sync.websocket import HandshakeError, Headers, connect


def headers(**items: str) -> Headers:
    return Headers(tuple((name.replace("_", "-"), value) for name, value in items.items()))


def cert_dict(*common_names: str) -> dict:
    """The shape ssl.SSLSocket.getpeercert() returns, with these subject CNs."""
    subject = [(("countryName", "NL"),), (("organizationName", "ACME"),)]
    subject += [(("commonName", cn),) for cn in common_names]
    return {"subject": tuple(subject), "issuer": ((("commonName", "CA"),),)}


# -- Basic auth -------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["s3cret", "with:colons:inside", ":", "", "ünïcode",
                                      b"\x00\xff:\x80raw bytes", b"A" * 40])
def test_basic_authorization_round_trips_any_password(password: Any) -> None:
    value = basic_authorization("CP_1", password)
    assert value.startswith("Basic ")
    credentials = parse_basic_authorization(value)
    assert credentials.username == "CP_1"
    expected = password if isinstance(password, bytes) else password.encode("utf-8")
    assert credentials.password_bytes == expected
    assert check_password(credentials.password, password)


def test_basic_split_is_at_the_first_colon() -> None:
    token = base64.b64encode(b"CP_1:pa:ss").decode()
    assert tuple(parse_basic_authorization(f"Basic {token}")) == ("CP_1", "pa:ss")
    # Scheme names are case-insensitive.
    assert parse_basic_authorization(f"bAsIc {token}").username == "CP_1"


@pytest.mark.parametrize("value", [
    "Bearer abc",
    "Basic",
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"no colon here").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),
])
def test_parse_basic_authorization_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_basic_authorization(value)


def test_credentials_repr_hides_the_password() -> None:
    credentials = BasicCredentials("CP_1", "hunter2")
    assert "hunter2" not in repr(credentials)
    assert "hunter2" not in repr(headers(Authorization=basic_authorization("CP_1", "hunter2")))


def test_basic_authorization_refuses_a_colon_in_the_user() -> None:
    with pytest.raises(ValueError):
        basic_authorization("CP:1", "pw")


def test_password_from_headers() -> None:
    assert password_from_headers(headers(), "CP_1") is None
    h = headers(Authorization=basic_authorization("CP_1", "pw:1"))
    assert password_from_headers(h, "CP_1") == "pw:1"
    # The user must be the station id of the URL.
    with pytest.raises(Refused) as info:
        password_from_headers(h, "CP_2")
    assert info.value.status == 401 and info.value.kind is Reason.BAD_CREDENTIALS
    with pytest.raises(Refused) as info:
        password_from_headers(headers(Authorization="Digest x=1"), "CP_1")
    assert info.value.status == 401


def test_check_password_is_exact() -> None:
    assert check_password("abc", "abc")
    assert check_password("abc", b"abc")
    assert not check_password("abc", "abcd")
    assert not check_password("abc", "ABC")
    assert not check_password(None, "abc")
    assert not check_password("abc", None)


# -- station ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("station_id", ["CP_1", "a", "X" * 48, "with space", "~!$&'()*+,;=@-._"])
def test_valid_station_ids(station_id: str) -> None:
    assert validate_station_id(station_id) == station_id


@pytest.mark.parametrize("station_id", ["", "X" * 49, "a/b", "tab\there", "nul\x00", "del\x7f",
                                        "café", "\u202ertl", "line\nbreak"])
def test_invalid_station_ids_are_400(station_id: str) -> None:
    with pytest.raises(Refused) as info:
        validate_station_id(station_id)
    assert info.value.status == 400
    assert info.value.kind is Reason.INVALID_STATION_ID


def test_known_stations_by_collection_and_lookup() -> None:
    check_known_station("CP_1", None)
    check_known_station("CP_1", {"CP_1"})
    check_known_station("CP_1", lambda sid: sid.startswith("CP_"))
    for known in ({"CP_2"}, lambda sid: False, ()):
        with pytest.raises(Refused) as info:
            check_known_station("CP_1", known)
        assert info.value.status == 404 and info.value.kind is Reason.UNKNOWN_STATION


# -- the authenticate hook --------------------------------------------------------------------


class HookRecorder:
    def __init__(self, result: Any = True, raises: BaseException | None = None) -> None:
        self.result = result
        self.raises = raises
        self.calls: list[tuple] = []

    def __call__(self, station_id: str, password: str | None, certificate: Any,
                 request_headers: Any) -> bool:
        self.calls.append((station_id, password, certificate, request_headers))
        if self.raises is not None:
            raise self.raises
        return self.result


def test_check_handshake_passes_everything_to_the_hook() -> None:
    hook = HookRecorder()
    h = headers(Authorization=basic_authorization("CP_1", "pw"), X_Extra="1")
    cert = cert_dict("CP_1")
    check_handshake("CP_1", h, cert, authenticate=hook)
    assert hook.calls == [("CP_1", "pw", cert, h)]
    # No Authorization header: the hook still decides (profile 3 has no password).
    check_handshake("CP_1", headers(), cert, authenticate=hook)
    assert hook.calls[-1][1] is None


@pytest.mark.parametrize("result, raises, status, kind", [
    (False, None, 401, Reason.BAD_CREDENTIALS),
    (None, None, 401, Reason.BAD_CREDENTIALS),
    ("yes", None, 401, Reason.BAD_CREDENTIALS),  # only True accepts
    (True, Refused(403, "banned"), 403, Reason.REFUSED),
    (True, RuntimeError("database down"), 500, Reason.AUTHENTICATION_ERROR),
])
def test_hook_results(result: Any, raises: BaseException | None, status: int,
                      kind: Reason) -> None:
    hook = HookRecorder(result, raises)
    with pytest.raises(Refused) as info:
        check_handshake("CP_1", headers(Authorization=basic_authorization("CP_1", "pw")), None,
                        authenticate=hook)
    assert (info.value.status, info.value.kind) == (status, kind)


def test_check_handshake_order_400_then_404_then_401() -> None:
    hook = HookRecorder(False)
    with pytest.raises(Refused) as info:
        check_handshake("a/b", headers(), None, authenticate=hook, known_stations={"CP_1"})
    assert info.value.status == 400
    with pytest.raises(Refused) as info:
        check_handshake("CP_9", headers(), None, authenticate=hook, known_stations={"CP_1"})
    assert info.value.status == 404
    with pytest.raises(Refused) as info:
        check_handshake("CP_1", headers(), None, authenticate=hook, known_stations={"CP_1"})
    assert info.value.status == 401
    # The hook never saw the refused ids.
    assert [c[0] for c in hook.calls] == ["CP_1"]


def test_wrong_user_is_refused_before_the_hook() -> None:
    hook = HookRecorder(True)
    with pytest.raises(Refused) as info:
        check_handshake("CP_1", headers(Authorization=basic_authorization("CP_2", "pw")), None,
                        authenticate=hook)
    assert info.value.status == 401
    assert hook.calls == []


def test_without_a_hook_only_the_id_is_checked() -> None:
    check_handshake("CP_1", headers(Authorization="garbage"), None)


# -- certificates -----------------------------------------------------------------------------


def test_certificate_matches_station() -> None:
    assert certificate_matches_station(cert_dict("CP_1"), "CP_1")
    assert not certificate_matches_station(cert_dict("CP_2"), "CP_1")
    assert not certificate_matches_station(cert_dict("cp_1"), "CP_1")
    assert not certificate_matches_station(cert_dict(), "CP_1")
    assert not certificate_matches_station(cert_dict("CP_1", "CP_2"), "CP_1")
    assert not certificate_matches_station(None, "CP_1")
    assert not certificate_matches_station({}, "CP_1")


def test_simple_authenticator() -> None:
    by_password = simple_authenticator({"CP_1": "pw1", "CP_2": b"pw2"})
    assert by_password("CP_1", "pw1", None, {})
    assert by_password("CP_2", "pw2", None, {})
    assert not by_password("CP_1", "pw2", None, {})   # another station's password
    assert not by_password("CP_3", "pw1", None, {})   # unknown station
    assert not by_password("CP_1", None, None, {})
    by_cert = simple_authenticator(require_certificate=True)
    assert by_cert("CP_1", None, cert_dict("CP_1"), {})
    assert not by_cert("CP_1", None, cert_dict("CP_2"), {})
    assert not by_cert("CP_1", None, None, {})
    both = simple_authenticator(lambda sid: "pw" if sid == "CP_1" else None,
                                require_certificate=True)
    assert both("CP_1", "pw", cert_dict("CP_1"), {})
    assert not both("CP_1", "pw", None, {})
    assert not both("CP_1", "bad", cert_dict("CP_1"), {})
    with pytest.raises(ValueError):
        simple_authenticator()


# -- TLS contexts -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"), ca)


class Pki:
    """Certificates for the tests, written to files as a user would have them."""

    def __init__(self, directory: Any, ca: trustme.CA) -> None:
        self.dir = directory
        self.ca = ca
        self.ca_file = self._write("ca.pem", ca.cert_pem.bytes())
        self.server = self.leaf("server", ca.issue_cert("127.0.0.1", "localhost"))
        self.other_ca = trustme.CA()
        self.other_ca_file = self._write("other-ca.pem", self.other_ca.cert_pem.bytes())

    def _write(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def leaf(self, name: str, cert: trustme.LeafCert) -> tuple:
        """(certfile, keyfile) of a leaf certificate."""
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        return (self._write(f"{name}.pem", chain),
                self._write(f"{name}.key", cert.private_key_pem.bytes()))

    def station(self, station_id: str, ca: trustme.CA | None = None, *,
                expired: bool = False) -> tuple:
        kwargs = {}
        if expired:
            now = datetime.datetime.now(datetime.timezone.utc)
            kwargs = {"not_before": now - datetime.timedelta(days=30),
                      "not_after": now - datetime.timedelta(days=1)}
        cert = (ca or self.ca).issue_cert("station.invalid", common_name=station_id, **kwargs)
        tag = ("x" if ca else "") + ("expired-" if expired else "") + station_id
        return self.leaf(f"station-{tag}", cert)


def test_server_context_defaults(pki: Pki) -> None:
    context = server_ssl_context(*pki.server)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    profile3 = server_ssl_context(*pki.server, cafile=pki.ca_file, require_client_certificate=True)
    assert profile3.verify_mode == ssl.CERT_REQUIRED
    optional = server_ssl_context(*pki.server, cafile=pki.ca_file)
    assert optional.verify_mode == ssl.CERT_OPTIONAL
    with pytest.raises(ValueError):
        server_ssl_context(*pki.server, require_client_certificate=True)


def test_client_context_defaults(pki: Pki) -> None:
    context = client_ssl_context(cafile=pki.ca_file)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    system = client_ssl_context()
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    relaxed = client_ssl_context(cafile=pki.ca_file, check_hostname=False)
    assert relaxed.verify_mode == ssl.CERT_REQUIRED and not relaxed.check_hostname
    client_ssl_context(cafile=pki.ca_file, certfile=pki.station("CP_1")[0],
                       keyfile=pki.station("CP_1")[1])
    with pytest.raises(ValueError):
        client_ssl_context(keyfile=pki.server[1])


def test_security_event_hook_failure_is_contained() -> None:
    seen: list[security.SecurityEvent] = []

    def hook(event: security.SecurityEvent) -> None:
        seen.append(event)
        raise RuntimeError("the hook is broken")

    event = security.SecurityEvent(Reason.UNKNOWN_STATION, "127.0.0.1:1", "CP_9", status=404)
    security.notify_security_event(hook, event)
    security.notify_security_event(None, event)
    assert seen == [event]
    assert event.time.tzinfo is not None


# -- secrets in frames ------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    [2, "1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "SECRETVALUE"}],
    [3, "1", {"configurationKey": [{"key": "AuthorizationKey", "readonly": False,
                                    "value": "SECRETVALUE"}]}],
    [2, "1", "SetVariables", {"setVariableData": [
        {"attributeValue": "SECRETVALUE", "component": {"name": "SecurityCtrlr"},
         "variable": {"name": "BasicAuthPassword"}}]}],
    [2, "1", "NotifyReport", {"requestId": 1, "seqNo": 0, "generatedAt": "2024-01-01T00:00:00Z",
                              "reportData": [{"component": {"name": "SecurityCtrlr"},
                                              "variable": {"name": "BasicAuthPassword"},
                                              "variableAttribute": [{"value": "SECRETVALUE"}]}]}],
    [2, "1", "SetNetworkProfile", {"configurationSlot": 1, "connectionData": {
        "basicAuthPassword": "SECRETVALUE",
        "apn": {"apn": "internet", "apnPassword": "SECRETVALUE", "apnAuthentication": "AUTO"},
        "vpn": {"server": "vpn", "user": "u", "password": "SECRETVALUE", "key": "SECRETVALUE",
                "type": "IPSec"}}}],
])
def test_redact_secrets_hides_passwords(frame: list) -> None:
    text = json.dumps(frame)
    redacted = security.redact_secrets(text)
    assert "SECRETVALUE" not in redacted
    assert "<hidden>" in redacted
    # Everything else survives.
    assert json.loads(redacted)[:2] == frame[:2]


def test_redact_secrets_leaves_other_frames_alone() -> None:
    for text in ['[2,"1","Heartbeat",{}]',
                 '[2,"1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]',
                 '[2,"1","SetVariables",{"setVariableData":[{"attributeValue":"60",'
                 '"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}}]}]']:
        assert security.redact_secrets(text) is text
    # A frame that names a secret setting elsewhere keeps its other values.
    text = ('[2,"1","GetVariables",{"getVariableData":[{"component":{"name":"SecurityCtrlr"},'
            '"variable":{"name":"BasicAuthPassword"}},{"component":{"name":"X"},'
            '"variable":{"name":"Y"},"attributeValue":"kept"}]}]')
    assert "kept" in security.redact_secrets(text)
    assert security.redact_secrets('not json "password" AuthorizationKey') == "<hidden>"


# -- real handshakes over loopback: profiles 1, 2 and 3 ---------------------------------------

WAIT = 10.0
PASSWORDS = {"CP_1": "pw:1-correct horse", "CP_2": b"\x00pw2\xff:"}


def echo(transport: Any, station_id: str, request: Any) -> None:
    while True:
        text = transport.receive()
        if text is None:
            return
        transport.send(text)


class Events:
    """The on_security_event hook: records events, lets a test wait for one."""

    def __init__(self) -> None:
        self.items: list[security.SecurityEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: security.SecurityEvent) -> None:
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def wait_for(self, reason: Reason, timeout: float = WAIT) -> security.SecurityEvent:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((e for e in self.items if e.reason is reason), None), timeout)
        assert found, f"no {reason} event; got {self.items}"
        return found


class Served:
    """A WebSocketServer with the given security options, an echo handler and an event log."""

    def __init__(self, scheme: str = "ws", **options: Any) -> None:
        self.events = Events()
        self.connections: list[tuple] = []
        self._server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"],
                                       on_connection=self._on_connection,
                                       on_security_event=self.events, **options)
        self._server.start()
        self.url = f"{scheme}://127.0.0.1:{self._server.port}/ocpp"
        self.port = self._server.port

    def _on_connection(self, transport: Any, station_id: str, request: Any) -> None:
        self.connections.append((station_id, request))
        echo(transport, station_id, request)

    def open(self, station_id: str = "CP_1", **kwargs: Any) -> Any:
        return connect(self.url, station_id, subprotocols=["ocpp1.6"], timeout=WAIT, **kwargs)

    def refused(self, station_id: str = "CP_1", **kwargs: Any) -> HandshakeError:
        with pytest.raises(HandshakeError) as info:
            transport = self.open(station_id, **kwargs)
            transport.close()
        return info.value

    def stop(self) -> None:
        self._server.stop()


def round_trip(transport: Any) -> None:
    try:
        transport.send('[2,"1","Heartbeat",{}]')
        assert transport.receive(timeout=WAIT) == '[2,"1","Heartbeat",{}]'
    finally:
        transport.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    servers: list[Served] = []

    def make(scheme: str = "ws", **options: Any) -> Served:
        served = Served(scheme, **options)
        servers.append(served)
        return served

    yield make
    for served in servers:
        served.stop()


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, return the whole answer (the server closes after a refusal)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def upgrade_request(path: str = "/ocpp/CP_1", **extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
             "Sec-WebSocket-Protocol: ocpp1.6"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.usefixtures("no_leftover_threads")
class TestProfile1:
    """Basic auth over plain websockets."""

    def options(self) -> dict:
        return {"authenticate": simple_authenticator(PASSWORDS)}

    def test_right_password(self, serve: Callable[..., Served]) -> None:
        served = serve(**self.options())
        round_trip(served.open("CP_1", password=PASSWORDS["CP_1"]))
        round_trip(served.open("CP_2", password=PASSWORDS["CP_2"]))
        assert [sid for sid, _ in served.connections] == ["CP_1", "CP_2"]
        assert served.events.items == []

    def test_wrong_password(self, serve: Callable[..., Served]) -> None:
        served = serve(**self.options())
        error = served.refused("CP_1", password="pw:1-wrong horse")
        assert error.status == 401
        event = served.events.wait_for(Reason.BAD_CREDENTIALS)
        assert (event.station_id, event.status) == ("CP_1", 401)
        assert event.remote_address.startswith("127.0.0.1:")
        assert served.connections == []

    def test_password_of_another_station(self, serve: Callable[..., Served]) -> None:
        served = serve(**self.options())
        assert served.refused("CP_1", password=PASSWORDS["CP_2"]).status == 401
        assert served.refused("CP_2", password=PASSWORDS["CP_1"]).status == 401
        assert served.connections == []

    def test_no_password(self, serve: Callable[..., Served]) -> None:
        served = serve(**self.options())
        assert served.refused("CP_1").status == 401

    def test_401_carries_www_authenticate(self, serve: Callable[..., Served]) -> None:
        served = serve(**self.options())
        answer = raw_exchange(served.port, upgrade_request())
        head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 401 ")
        assert "\r\nWWW-Authenticate: Basic realm=" in head

    def test_user_must_be_the_station_id(self, serve: Callable[..., Served]) -> None:
        hook = HookRecorder(True)     # accepts anything it sees: the refusal is the user's alone
        served = serve(authenticate=hook)
        # CP_2's own, correct credentials, but on CP_1's URL.
        value = basic_authorization("CP_2", PASSWORDS["CP_2"])
        answer = raw_exchange(served.port, upgrade_request("/ocpp/CP_1", Authorization=value))
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert hook.calls == []
        # The same header on CP_2's URL is accepted: the refusal above was about the user.
        round_trip(served.open("CP_2", headers={"Authorization": value}))
        assert [call[0] for call in hook.calls] == ["CP_2"]

    def test_hook_gets_password_and_headers(self, serve: Callable[..., Served]) -> None:
        hook = HookRecorder(True)
        served = serve(authenticate=hook)
        round_trip(served.open("CP_1", password="a:b", headers={"X-Serial": "42"}))
        ((station_id, password, certificate, request_headers),) = hook.calls
        assert (station_id, password, certificate) == ("CP_1", "a:b", None)
        assert request_headers["x-serial"] == "42"

    def test_hook_refusing_with_its_own_status(self, serve: Callable[..., Served]) -> None:
        served = serve(authenticate=HookRecorder(raises=Refused(403, "station is blocked")))
        error = served.refused("CP_1", password="x")
        assert error.status == 403 and "blocked" in error.reason
        assert served.events.wait_for(Reason.REFUSED).status == 403

    def test_hook_failing_is_500(self, serve: Callable[..., Served]) -> None:
        served = serve(authenticate=HookRecorder(raises=RuntimeError("db down")))
        assert served.refused("CP_1", password="x").status == 500
        served.events.wait_for(Reason.AUTHENTICATION_ERROR)

    def test_passwords_never_logged(self, serve: Callable[..., Served],
                                    caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        secret = "S3cr3t:Pa55-w0rd"
        served = serve(authenticate=simple_authenticator({"CP_1": secret}))
        round_trip(served.open("CP_1", password=secret))
        served.refused("CP_1", password=secret + "x")
        served.refused("CP_2", password=secret)
        value = basic_authorization("CP_2", secret)
        raw_exchange(served.port, upgrade_request("/ocpp/CP_1", Authorization=value))
        served.events.wait_for(Reason.BAD_CREDENTIALS)
        assert caplog.records, "nothing was logged, so the check below proves nothing"
        text = caplog.text + "".join(repr(r.args) for r in caplog.records)
        for leak in (secret, "S3cr3t", value.split()[1], basic_authorization("CP_1", secret)):
            assert leak not in text


def test_credentials_never_follow_a_redirect() -> None:
    """websocket-client follows redirects with the same headers; with a password it must not."""
    with socket.create_server(("127.0.0.1", 0)) as redirector, \
            socket.create_server(("127.0.0.1", 0)) as elsewhere:
        elsewhere.setblocking(False)
        target = f"ws://127.0.0.1:{elsewhere.getsockname()[1]}/ocpp/CP_1"

        def redirect() -> None:
            conn, _ = redirector.accept()
            with conn:
                conn.settimeout(WAIT)
                while b"\r\n\r\n" not in conn.recv(65536):
                    pass
                conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {target}\r\n"
                             "Content-Length: 0\r\n\r\n".encode())

        thread = threading.Thread(target=redirect, name="test-redirector", daemon=True)
        thread.start()
        try:
            with pytest.raises(HandshakeError):
                connect(f"ws://127.0.0.1:{redirector.getsockname()[1]}/ocpp", "CP_1",
                        subprotocols=["ocpp1.6"], password="secret", timeout=WAIT)
        finally:
            thread.join(WAIT)
        # Had the client followed, its connection would already be waiting here.
        with pytest.raises(BlockingIOError):
            elsewhere.accept()


@pytest.fixture(scope="module")
def tls_server_context(pki: Pki) -> ssl.SSLContext:
    return server_ssl_context(*pki.server)


def legacy_tls(context: ssl.SSLContext) -> ssl.SSLContext:
    """Force a context down to TLS 1.0-1.1 (and the OpenSSL security level that allows it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@pytest.mark.usefixtures("no_leftover_threads")
class TestProfile2:
    """TLS with a server certificate, plus Basic auth."""

    def serve2(self, serve: Callable[..., Served], context: ssl.SSLContext) -> Served:
        return serve("wss", ssl_context=context, authenticate=simple_authenticator(PASSWORDS))

    def test_right_password(self, serve: Callable[..., Served], pki: Pki,
                            tls_server_context: ssl.SSLContext) -> None:
        served = self.serve2(serve, tls_server_context)
        round_trip(served.open("CP_1", password=PASSWORDS["CP_1"],
                               ssl_context=client_ssl_context(cafile=pki.ca_file)))
        assert served.events.items == []

    def test_wrong_password_and_other_stations_password(
            self, serve: Callable[..., Served], pki: Pki,
            tls_server_context: ssl.SSLContext) -> None:
        served = self.serve2(serve, tls_server_context)
        client = client_ssl_context(cafile=pki.ca_file)
        assert served.refused("CP_1", password="nope", ssl_context=client).status == 401
        assert served.refused("CP_1", password=PASSWORDS["CP_2"], ssl_context=client).status == 401
        assert served.connections == []

    def test_server_certificate_for_another_host(self, serve: Callable[..., Served],
                                                  pki: Pki) -> None:
        wrong_host = pki.leaf("wrong-host", pki.ca.issue_cert("csms.example.org"))
        served = self.serve2(serve, server_ssl_context(*wrong_host))
        error = served.refused("CP_1", password=PASSWORDS["CP_1"],
                               ssl_context=client_ssl_context(cafile=pki.ca_file))
        assert error.status is None
        assert "certificate" in str(error).lower() or "hostname" in str(error).lower()
        served.events.wait_for(Reason.TLS_FAILED)
        # The same certificate passes once host names are not checked: the refusal was the name.
        round_trip(served.open("CP_1", password=PASSWORDS["CP_1"], ssl_context=client_ssl_context(
            cafile=pki.ca_file, check_hostname=False)))

    def test_server_certificate_from_another_ca(self, serve: Callable[..., Served], pki: Pki,
                                                tls_server_context: ssl.SSLContext) -> None:
        served = self.serve2(serve, tls_server_context)
        error = served.refused("CP_1", password=PASSWORDS["CP_1"],
                               ssl_context=client_ssl_context(cafile=pki.other_ca_file))
        assert error.status is None and "certificate" in str(error).lower()
        assert served.connections == []

    def test_expired_server_certificate(self, serve: Callable[..., Served], pki: Pki) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        expired = pki.leaf("expired-server", pki.ca.issue_cert(
            "127.0.0.1", not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1)))
        served = self.serve2(serve, server_ssl_context(*expired))
        error = served.refused("CP_1", password=PASSWORDS["CP_1"],
                               ssl_context=client_ssl_context(cafile=pki.ca_file))
        assert error.status is None and "expired" in str(error).lower()

    def test_client_forced_to_tls_1_1_is_refused(self, serve: Callable[..., Served], pki: Pki,
                                                 tls_server_context: ssl.SSLContext) -> None:
        served = self.serve2(serve, tls_server_context)
        old = legacy_tls(client_ssl_context(cafile=pki.ca_file))
        error = served.refused("CP_1", password=PASSWORDS["CP_1"], ssl_context=old)
        assert error.status is None
        event = served.events.wait_for(Reason.TLS_FAILED)
        assert "protocol" in event.detail.lower() or "version" in event.detail.lower()
        assert served.connections == []

    def test_client_refuses_a_tls_1_1_server(self, serve: Callable[..., Served], pki: Pki) -> None:
        old_server = legacy_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        old_server.load_cert_chain(*pki.server)
        served = self.serve2(serve, old_server)
        error = served.refused("CP_1", password=PASSWORDS["CP_1"],
                               ssl_context=client_ssl_context(cafile=pki.ca_file))
        assert error.status is None
        assert served.connections == []

    def test_tls_1_1_handshake_works_when_allowed(self, pki: Pki) -> None:
        """Control for the two tests above: this OpenSSL can speak TLS 1.1, so their refusals
        come from the TLS 1.2 minimum, not from a build without TLS 1.1."""
        server = legacy_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        server.load_cert_chain(*pki.server)
        client = legacy_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        client.load_verify_locations(pki.ca_file)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            result: dict[str, Any] = {}

            def accept() -> None:
                conn, _ = listener.accept()
                try:
                    with server.wrap_socket(conn, server_side=True) as tls:
                        result["server"] = tls.version()
                except ssl.SSLError as exc:
                    result["server"] = exc

            thread = threading.Thread(target=accept, name="tls11-control", daemon=True)
            thread.start()
            try:
                with client.wrap_socket(socket.create_connection(listener.getsockname(),
                                                                 timeout=WAIT),
                                        server_hostname="127.0.0.1") as tls:
                    version = tls.version()
            except ssl.SSLError as exc:
                pytest.skip(f"this OpenSSL build cannot speak TLS 1.1 at all: {exc}")
            finally:
                thread.join(WAIT)
        assert version == "TLSv1.1" and result["server"] == "TLSv1.1"

    def test_plain_websocket_to_a_tls_server(self, serve: Callable[..., Served],
                                             tls_server_context: ssl.SSLContext) -> None:
        served = self.serve2(serve, tls_server_context)
        with pytest.raises(HandshakeError):
            connect(served.url.replace("wss://", "ws://"), "CP_1", subprotocols=["ocpp1.6"],
                    password=PASSWORDS["CP_1"], timeout=WAIT).close()
        served.events.wait_for(Reason.TLS_FAILED)


@pytest.mark.usefixtures("no_leftover_threads")
class TestProfile3:
    """Mutual TLS: the station's certificate is its credential."""

    def serve3(self, serve: Callable[..., Served], pki: Pki, **options: Any) -> Served:
        options.setdefault("authenticate", simple_authenticator(require_certificate=True))
        return serve("wss", ssl_context=server_ssl_context(
            *pki.server, cafile=pki.ca_file, require_client_certificate=True), **options)

    def client(self, pki: Pki, cert: tuple | None) -> ssl.SSLContext:
        if cert is None:
            return client_ssl_context(cafile=pki.ca_file)
        return client_ssl_context(cafile=pki.ca_file, certfile=cert[0], keyfile=cert[1])

    def test_right_certificate(self, serve: Callable[..., Served], pki: Pki) -> None:
        hook = HookRecorder(True)
        served = self.serve3(serve, pki, authenticate=hook)
        round_trip(served.open("CP_1", ssl_context=self.client(pki, pki.station("CP_1"))))
        ((station_id, password, certificate, _),) = hook.calls
        assert (station_id, password) == ("CP_1", None)
        assert certificate_matches_station(certificate, "CP_1")
        assert served.events.items == []

    def test_ready_hook_accepts_the_right_certificate(self, serve: Callable[..., Served],
                                                      pki: Pki) -> None:
        served = self.serve3(serve, pki)
        round_trip(served.open("CP_1", ssl_context=self.client(pki, pki.station("CP_1"))))

    def test_no_certificate(self, serve: Callable[..., Served], pki: Pki) -> None:
        served = self.serve3(serve, pki)
        error = served.refused("CP_1", ssl_context=self.client(pki, None))
        assert error.status is None
        served.events.wait_for(Reason.TLS_FAILED)
        assert served.connections == []

    def test_certificate_from_another_ca(self, serve: Callable[..., Served], pki: Pki) -> None:
        served = self.serve3(serve, pki)
        stranger = pki.station("CP_1", ca=pki.other_ca)
        assert served.refused("CP_1", ssl_context=self.client(pki, stranger)).status is None
        assert "certificate" in served.events.wait_for(Reason.TLS_FAILED).detail.lower()
        assert served.connections == []

    def test_expired_certificate(self, serve: Callable[..., Served], pki: Pki) -> None:
        served = self.serve3(serve, pki)
        expired = pki.station("CP_1", expired=True)
        assert served.refused("CP_1", ssl_context=self.client(pki, expired)).status is None
        assert "expired" in served.events.wait_for(Reason.TLS_FAILED).detail.lower()
        assert served.connections == []

    def test_certificate_of_another_station(self, serve: Callable[..., Served], pki: Pki) -> None:
        served = self.serve3(serve, pki)
        error = served.refused("CP_1", ssl_context=self.client(pki, pki.station("CP_2")))
        assert error.status == 401
        assert served.events.wait_for(Reason.BAD_CREDENTIALS).station_id == "CP_1"

    def test_certificate_and_password_together(self, serve: Callable[..., Served],
                                               pki: Pki) -> None:
        served = self.serve3(serve, pki, authenticate=simple_authenticator(
            PASSWORDS, require_certificate=True))
        cert = self.client(pki, pki.station("CP_1"))
        round_trip(served.open("CP_1", ssl_context=cert, password=PASSWORDS["CP_1"]))
        assert served.refused("CP_1", ssl_context=cert, password="bad").status == 401


# -- the profile 3 example pair, run as is --------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def test_profile3_examples(tmp_path: Path) -> None:
    """The README's profile 3 walk-through: certificates in a folder, the two example scripts."""
    ca = trustme.CA()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    for name, cert in (("csms", ca.issue_cert("localhost", "127.0.0.1")),
                       ("CP_1", ca.issue_cert("station.invalid", common_name="CP_1"))):
        (tmp_path / f"{name}.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        (tmp_path / f"{name}.key").write_bytes(cert.private_key_pem.bytes())
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    csms = subprocess.Popen([sys.executable, str(EXAMPLES / "profile3_csms.py"), "--port", "0",
                             "--certs", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=ctrl_c_works)
    try:
        assert csms.stdout is not None
        first = csms.stdout.readline()
        match = re.search(r"wss://127\.0\.0\.1:(\d+)/", first)
        assert match, first
        url = f"wss://localhost:{match.group(1)}/"

        def station(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, str(EXAMPLES / "profile3_charge_point.py"),
                                   "--url", url, "--certs", str(tmp_path), *args],
                                  capture_output=True, text=True, env=env, timeout=60)

        ok = station("--id", "CP_1")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "boot: Accepted" in ok.stdout
        # CP_1's certificate does not make anyone else CP_1.
        impostor = station("--id", "CP_2", "--cert", str(tmp_path / "CP_1.pem"),
                           "--key", str(tmp_path / "CP_1.key"))
        assert impostor.returncode != 0 and "401" in impostor.stderr
        csms.send_signal(signal.SIGINT)
        out, _ = csms.communicate(timeout=60)
    finally:
        if csms.poll() is None:
            csms.kill()
            csms.communicate()
    assert "CP_1: booted" in out
    assert "refused" in out and "CP_2" in out
    assert "CSMS stopped" in out
