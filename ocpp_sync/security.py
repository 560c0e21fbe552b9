"""OCPP security profiles 1-3: credentials, station ids, TLS contexts and security events.

Profile 1 is HTTP Basic auth over ``ws://``, profile 2 adds TLS with a server
certificate, profile 3 replaces the password with a client certificate
(mutual TLS). The CSMS decides every handshake before the websocket upgrade,
so a refused station never reaches OCPP at all:

1. the station id (the URL's last path segment) must be well formed: else 400;
2. it must be known, when the application gives a list or lookup: else 404;
3. ``authenticate(station_id, password, certificate, headers)`` must accept
   it: else 401 with ``WWW-Authenticate: Basic``.

Every refusal (and every connection closed for misbehaving) is reported to the
application's ``on_security_event`` hook as a :class:`SecurityEvent`.

Passwords are plain ``str``. OCPP 1.6 lets a password be any bytes, so a
received password that is not valid UTF-8 is decoded with ``surrogateescape``:
``password.encode("utf-8", "surrogateescape")`` gives back the exact bytes, and
:func:`check_password` compares that way. Neither a password nor an
``Authorization`` header is ever logged.
"""
from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import logging
import ssl
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from os import PathLike
from typing import Any, NamedTuple

from ocpp_sync.errors import HandshakeError, UpgradeRefused

__all__ = [
    "MAX_STATION_ID_LENGTH",
    "PeerCertificate",
    "Authenticate",
    "KnownStations",
    "SecurityEventHook",
    "Reason",
    "SecurityEvent",
    "Refused",
    "BasicCredentials",
    "basic_authorization",
    "parse_basic_authorization",
    "password_from_headers",
    "check_password",
    "validate_station_id",
    "check_known_station",
    "check_handshake",
    "check_credentials",
    "certificate_common_names",
    "certificate_matches_station",
    "simple_authenticator",
    "server_ssl_context",
    "client_ssl_context",
    "redact_secrets",
]

log = logging.getLogger("ocpp_sync.security")

#: OCPP identities are CiString48 at most.
MAX_STATION_ID_LENGTH = 48

#: The peer certificate as ``ssl.SSLSocket.getpeercert()`` decodes it (a dict with
#: ``subject``, ``issuer``, ``notAfter``, ...); only present for a verified certificate.
PeerCertificate = dict[str, Any]

#: ``authenticate(station_id, password, certificate, request_headers) -> bool``.
#: ``password`` is None when the station sent no ``Authorization`` header,
#: ``certificate`` is None without a verified client certificate. Return True to
#: accept, False to refuse with 401, or raise :class:`Refused` for another status.
#: Any other exception refuses with 500 (and is logged).
Authenticate = Callable[[str, str | None, PeerCertificate | None, Mapping[str, str]], bool]

#: Known station ids: a collection (``in`` is used) or a lookup ``known(station_id) -> bool``.
KnownStations = Collection[str] | Callable[[str], bool]

StrPath = str | PathLike[str]


class Reason(str, enum.Enum):
    """Why a handshake was refused or a connection closed; ``SecurityEvent.reason``."""

    BAD_REQUEST = "bad_request"                    # not a valid websocket upgrade request
    REQUEST_TOO_LARGE = "request_too_large"        # request line or headers over the limit
    HANDSHAKE_TIMEOUT = "handshake_timeout"        # no complete request (or TLS handshake) in time
    TLS_FAILED = "tls_failed"                      # TLS handshake failed (bad or missing certificate,
                                                   # old TLS version, not TLS at all)
    INVALID_STATION_ID = "invalid_station_id"      # 400
    UNKNOWN_STATION = "unknown_station"            # 404
    NO_COMMON_SUBPROTOCOL = "no_common_subprotocol"
    BAD_CREDENTIALS = "bad_credentials"            # 401
    REFUSED = "refused"                            # the application's hook refused with its own status
    AUTHENTICATION_ERROR = "authentication_error"  # the hook raised unexpectedly: 500
    TOO_MANY_CONNECTIONS = "too_many_connections"  # per-address cap: 429
    MESSAGE_TOO_LARGE = "message_too_large"        # close 1009
    BAD_MESSAGES = "bad_messages"                  # bad-message budget spent: close 1008

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SecurityEvent:
    """One refused handshake or one connection closed for misbehaving.

    ``status`` is the HTTP status the handshake was refused with (None when no
    HTTP answer was possible, e.g. a failed TLS handshake); ``close_code`` is the
    websocket close code for an open connection that was closed. ``station_id`` is
    None when the request never got far enough to name one (or named an invalid one).
    """

    reason: Reason
    remote_address: str
    station_id: str | None = None
    status: int | None = None
    close_code: int | None = None
    detail: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


#: ``on_security_event(event)``; runs in the connection's thread, so keep it short.
SecurityEventHook = Callable[[SecurityEvent], None]


def notify_security_event(hook: SecurityEventHook | None, event: SecurityEvent) -> None:
    """Log ``event`` and pass it to ``hook``; a failing hook is logged, never propagated."""
    log.warning("security event %s from %s (station %r, status %s, close %s): %s", event.reason,
                event.remote_address, event.station_id, event.status, event.close_code,
                event.detail)
    if hook is None:
        return
    try:
        hook(event)
    except Exception:
        log.exception("the security event hook failed")


#: Refuse a handshake with this HTTP status; an ``authenticate`` hook may raise it:
#: ``Refused(status, reason, kind=Reason...)``. The one refusal type of every layer
#: (``ocpp_sync.errors.UpgradeRefused``) under its public name.
Refused = UpgradeRefused


class BasicCredentials(NamedTuple):
    """The user and password of an ``Authorization: Basic`` header; the repr hides the password."""

    username: str
    password: str

    @property
    def password_bytes(self) -> bytes:
        """The password exactly as sent."""
        return self.password.encode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        return f"BasicCredentials(username={self.username!r}, password=<hidden>)"


def _as_bytes(password: str | bytes) -> bytes:
    if isinstance(password, bytes):
        return password
    return password.encode("utf-8", "surrogateescape")


def basic_authorization(station_id: str, password: str | bytes) -> str:
    """The ``Authorization`` header value a station sends under profiles 1 and 2.

    The user is the station id; a ``bytes`` password is sent as is, a ``str`` as UTF-8.
    """
    if ":" in station_id:
        raise ValueError("a station id used with Basic auth must not contain ':'")
    token = base64.b64encode(station_id.encode("utf-8") + b":" + _as_bytes(password))
    return "Basic " + token.decode("ascii")


def parse_basic_authorization(value: str) -> BasicCredentials:
    """Split an ``Authorization: Basic`` value into user and password.

    The split is at the first ``:``, so the password may contain ``:`` (and any
    other byte). Raises ValueError for another scheme or a malformed token.
    """
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ValueError("not Basic authorization")
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("malformed Basic credentials") from None
    user, sep, password = raw.partition(b":")
    if not sep:
        raise ValueError("malformed Basic credentials: no ':'")
    try:
        username = user.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the Basic user is not UTF-8") from None
    return BasicCredentials(username, password.decode("utf-8", "surrogateescape"))


def password_from_headers(headers: Mapping[str, str], station_id: str) -> str | None:
    """The Basic auth password a station sent, or None when it sent no ``Authorization``.

    Refuses (401) a malformed header, another scheme, and a user that is not
    the station id of the URL: one station's password must not open another's connection.
    """
    value = headers.get("Authorization")
    if value is None:
        return None
    try:
        credentials = parse_basic_authorization(value)
    except ValueError as exc:
        raise Refused(401, str(exc), kind=Reason.BAD_CREDENTIALS) from None
    if credentials.username != station_id:
        raise Refused(401, "the Basic auth user is not the station id of the URL",
                      kind=Reason.BAD_CREDENTIALS)
    return credentials.password


def check_password(given: str | None, expected: str | bytes | None) -> bool:
    """Compare a received password with the expected one in constant time (as bytes)."""
    if given is None or expected is None:
        return False
    return hmac.compare_digest(_as_bytes(given), _as_bytes(expected))


def validate_station_id(station_id: str) -> str:
    """Return ``station_id`` if it is a usable identity, else refuse it with 400.

    ``station_id`` is already URL-decoded. It must be 1 to 48 characters of
    printable ASCII (space to ``~``) without ``/``.
    """
    if not station_id:
        raise Refused(400, "empty station id", kind=Reason.INVALID_STATION_ID)
    if len(station_id) > MAX_STATION_ID_LENGTH:
        raise Refused(400, f"station id longer than {MAX_STATION_ID_LENGTH} characters",
                      kind=Reason.INVALID_STATION_ID)
    if any(not " " <= ch <= "~" for ch in station_id):
        raise Refused(400, "station id has characters outside printable ASCII",
                      kind=Reason.INVALID_STATION_ID)
    if "/" in station_id:
        raise Refused(400, "station id contains '/'", kind=Reason.INVALID_STATION_ID)
    return station_id


def check_known_station(station_id: str, known: KnownStations | None) -> None:
    """Refuse (404) a station that is not in ``known``; no list means every station is known."""
    if known is None:
        return
    found = known(station_id) if callable(known) else station_id in known
    if not found:
        raise Refused(404, "unknown station", kind=Reason.UNKNOWN_STATION)


def check_handshake(station_id: str, headers: Mapping[str, str],
                    certificate: PeerCertificate | None, *,
                    authenticate: Authenticate | None = None,
                    known_stations: KnownStations | None = None) -> None:
    """Everything the CSMS decides about a station before the upgrade; raises :class:`Refused`.

    In order: a well formed id (400), a known id (404), then, when an
    ``authenticate`` hook is given, the credentials (401).
    """
    validate_station_id(station_id)
    check_known_station(station_id, known_stations)
    if authenticate is not None:
        check_credentials(station_id, headers, certificate, authenticate)


def check_credentials(station_id: str, headers: Mapping[str, str],
                      certificate: PeerCertificate | None, authenticate: Authenticate) -> None:
    """Run the ``authenticate`` hook on the request's credentials; raises :class:`Refused`.

    401 for a malformed ``Authorization``, a Basic user that is not the station
    id, or a hook that does not return True; the hook's own status when it
    raises :class:`Refused`; 500 when it fails otherwise.
    """
    password = password_from_headers(headers, station_id)
    try:
        accepted = authenticate(station_id, password, certificate, headers)
    except HandshakeError:
        raise
    except Exception:
        log.exception("the authenticate hook failed for station %r", station_id)
        raise Refused(500, "authentication failed", kind=Reason.AUTHENTICATION_ERROR) from None
    if accepted is not True:
        raise Refused(401, "unauthorized", kind=Reason.BAD_CREDENTIALS)


def certificate_common_names(certificate: PeerCertificate | None) -> list[str]:
    """Every commonName in the certificate's subject (usually exactly one)."""
    if not certificate:
        return []
    return [value for rdn in certificate.get("subject", ()) for name, value in rdn
            if name == "commonName"]


def certificate_matches_station(certificate: PeerCertificate | None, station_id: str) -> bool:
    """True if the certificate's subject has exactly one CN and it is ``station_id``.

    Profile 3 ties a client certificate to one station: without this check any
    station with a certificate from the CA could connect under any id.
    """
    names = certificate_common_names(certificate)
    return len(names) == 1 and names[0] == station_id


def simple_authenticator(passwords: Mapping[str, str | bytes] | Callable[[str], str | bytes | None] | None = None,
                         *, require_certificate: bool = False) -> Authenticate:
    """A ready ``authenticate`` hook for the common cases.

    ``passwords`` maps station ids to passwords (or is a lookup returning the
    password or None): the station must send that password (profiles 1 and 2).
    With ``require_certificate`` the station must present a verified client
    certificate whose CN is its id (profile 3). Both may be combined.
    """
    if passwords is None and not require_certificate:
        raise ValueError("give passwords, require_certificate, or both")

    def authenticate(station_id: str, password: str | None,
                     certificate: PeerCertificate | None, headers: Mapping[str, str]) -> bool:
        if require_certificate and not certificate_matches_station(certificate, station_id):
            return False
        if passwords is None:
            return True
        expected = passwords(station_id) if callable(passwords) else passwords.get(station_id)
        return check_password(password, expected)

    return authenticate


def server_ssl_context(certfile: StrPath, keyfile: StrPath | None = None, *,
                       password: str | bytes | None = None,
                       cafile: StrPath | None = None, capath: StrPath | None = None,
                       cadata: str | bytes | None = None,
                       require_client_certificate: bool = False) -> ssl.SSLContext:
    """The CSMS's TLS context: its certificate chain and key, TLS 1.2 or later.

    Profile 2: ``certfile`` (+ ``keyfile``) only. Profile 3: also
    ``require_client_certificate=True`` with the CA that signs the stations'
    certificates (``cafile``/``capath``/``cadata``). A CA without the requirement
    verifies a certificate when a station offers one, and accepts stations without.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile, password)
    has_ca = cafile is not None or capath is not None or cadata is not None
    if require_client_certificate and not has_ca:
        raise ValueError("require_client_certificate needs the CA of the stations' certificates")
    if has_ca:
        context.load_verify_locations(cafile, capath, cadata)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(*, cafile: StrPath | None = None, capath: StrPath | None = None,
                       cadata: str | bytes | None = None,
                       certfile: StrPath | None = None, keyfile: StrPath | None = None,
                       password: str | bytes | None = None,
                       check_hostname: bool = True) -> ssl.SSLContext:
    """The station's TLS context: verifies the CSMS, TLS 1.2 or later.

    Without ``cafile``/``capath``/``cadata`` the system's CA store is used. The
    host name in the URL is checked against the server certificate unless
    ``check_hostname=False`` (the chain is still verified). ``certfile`` (+
    ``keyfile``) is the station's own certificate for profile 3.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile, capath=capath,
                                         cadata=cadata)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile, password)
    elif keyfile is not None:
        raise ValueError("keyfile given without certfile")
    return context


# Configuration keys / variables whose value is a station's password (1.6 security
# extension; 2.0.1 and 2.1 SecurityCtrlr), and payload fields that carry a secret.
_SECRET_SETTINGS = frozenset({"AuthorizationKey", "BasicAuthPassword"})
_SECRET_FIELDS = frozenset({"password", "apnPassword", "basicAuthPassword"})
_MARKERS = tuple(_SECRET_SETTINGS | _SECRET_FIELDS)
_HIDDEN = "<hidden>"


def redact_secrets(text: str) -> str:
    """An OCPP-J frame with every password in it replaced by ``<hidden>``, for logs.

    Covers ChangeConfiguration/GetConfiguration of ``AuthorizationKey`` (1.6),
    Set/GetVariables and NotifyReport of ``BasicAuthPassword`` (2.x), and the
    APN/VPN/Basic auth secrets of SetNetworkProfile. Frames that mention none of
    these are returned unchanged without being parsed, so this is cheap to call
    on every frame; a frame that is not JSON but mentions one is hidden whole.
    """
    if not any(marker in text for marker in _MARKERS):
        return text
    try:
        frame = json.loads(text)
    except ValueError:
        return _HIDDEN
    return json.dumps(_redact(frame, in_vpn=False), separators=(",", ":"), ensure_ascii=False)


def _redact(value: Any, *, in_vpn: bool) -> Any:
    if isinstance(value, list):
        return [_redact(item, in_vpn=in_vpn) for item in value]
    if not isinstance(value, dict):
        return value
    variable = value.get("variable")
    secret_setting = value.get("key") in _SECRET_SETTINGS or (
        isinstance(variable, dict) and variable.get("name") in _SECRET_SETTINGS)
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name in _SECRET_FIELDS or (in_vpn and name == "key"):
            out[name] = _HIDDEN
        elif secret_setting and name in ("value", "attributeValue"):
            out[name] = _HIDDEN
        elif secret_setting and name == "variableAttribute" and isinstance(item, list):
            out[name] = [dict(attr, value=_HIDDEN) if isinstance(attr, dict) and "value" in attr
                         else attr for attr in item]
        else:
            out[name] = _redact(item, in_vpn=name == "vpn")
    return out
