"""Security profiles 1-3: credential parsing, station ids, hooks, TLS contexts, and real handshakes.

Certificates are made at test time with trustme; every network test runs over loopback sockets.
"""
from __future__ import annotations

import base64
import datetime
import json
import ssl
from typing import Any

import pytest
import trustme

from ocpp_sync import security
from ocpp_sync._transports import Headers
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
