"""Local authorization and reservations through a real CSMS on loopback, for 1.6, 2.0.1 and 2.1."""
from __future__ import annotations

import datetime
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import attrs
import pytest
from support.raw import WAIT

from ocpp_sync.csms.csms import Station
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.authcache import AuthCache
from ocpp_sync.station.authorization import CACHE, CSMS, LOCAL_LIST, AuthOptions, Authorization
from ocpp_sync.station.locallist import LocalList
from ocpp_sync.station.reporter import Reporter
from ocpp_sync.station.reservations import ANY_EVSE, Reservations, ReservationStore
from ocpp_sync.station.tokens import IdToken
from ocpp_sync.testing import connected_charge_point, running_csms

NOW = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)


@attrs.define
class Clock:
    now: datetime.datetime = NOW

    def __call__(self) -> datetime.datetime:
        return self.now


@attrs.define
class Linked:
    auth: Authorization
    reservations: Reservations
    station: Station
    m: ModuleType
    clock: Clock
    authorized: list[str]

    @property
    def v16(self) -> bool:
        return bool(self.m.VERSION == "1.6")

    def token(self, value: str) -> IdToken:
        return IdToken(value) if self.v16 else IdToken(value, "ISO14443")

    def wire_token(self, value: str) -> Any:
        return value if self.v16 else self.m.IdTokenType(id_token=value, type="ISO14443")

    def entry(self, value: str, status: str | None) -> Any:
        m = self.m
        if self.v16:
            return m.AuthorizationData(id_tag=value, id_tag_info=None if status is None else m.IdTagInfo(status=status))
        return m.AuthorizationData(id_token=self.wire_token(value),
                                   id_token_info=None if status is None else m.IdTokenInfoType(status=status))

    def send_list(self, kind: str, number: int, entries: list[tuple[str, str | None]]) -> str:
        items = [self.entry(value, status) for value, status in entries] or None
        if self.v16:
            request = self.m.SendLocalListRequest(list_version=number, update_type=kind,
                                                  local_authorization_list=items)
        else:
            request = self.m.SendLocalListRequest(version_number=number, update_type=kind,
                                                  local_authorization_list=items)
        return str(self.station.send(request).status)

    def list_version(self) -> int:
        reply = self.station.send(self.m.GetLocalListVersionRequest())
        return int(reply.list_version if self.v16 else reply.version_number)

    def reserve(self, rid: int, evse: int | None, value: str, minutes: int = 10) -> str:
        expiry = NOW + datetime.timedelta(minutes=minutes)
        if self.v16:
            request = self.m.ReserveNowRequest(reservation_id=rid, connector_id=evse or 0, id_tag=value,
                                               expiry_date=expiry)
        else:
            request = self.m.ReserveNowRequest(id=rid, evse_id=evse, id_token=self.wire_token(value),
                                               expiry_date_time=expiry)
        return str(self.station.send(request).status)


@pytest.fixture(params=["1.6", "2.0.1", "2.1"])
def linked(request: pytest.FixtureRequest) -> Iterator[Linked]:
    version = request.param
    m = version_module(version)
    clock = Clock()
    reporter = Reporter("ocpp-station-test-reservations")
    auth = Authorization(LocalList(version), AuthCache(), options=AuthOptions(local_pre_authorize=True),
                         clock=clock, timeout=WAIT)
    reservations = Reservations(ReservationStore(version, evse_count=2), clock=clock, reporter=reporter)
    authorized: list[str] = []

    def on_authorize(_station: Station, req: Any) -> Any:
        value = req.id_tag if version == "1.6" else req.id_token.id_token
        authorized.append(value)
        status = "Accepted" if value.startswith("ok") else "Invalid"
        if version == "1.6":
            return m.AuthorizeResponse(id_tag_info=m.IdTagInfo(status=status))
        return m.AuthorizeResponse(id_token_info=m.IdTokenInfoType(status=status))

    with running_csms((version,), accept_all=False, timeout=WAIT) as csms, \
            connected_charge_point(csms, version, timeout=WAIT) as (cp, station):
        csms.on(m.AuthorizeRequest)(on_authorize)
        if version != "1.6":
            csms.on(m.ReservationStatusUpdateRequest)(lambda _s, _r: m.ReservationStatusUpdateResponse())
        auth.attach(cp)
        reservations.attach(cp)
        yield Linked(auth, reservations, station, m, clock, authorized)
        reporter.stop(WAIT)


@pytest.mark.usefixtures("no_leftover_threads")
def test_the_csms_manages_the_local_list_and_the_station_authorizes_from_it(linked: Linked) -> None:
    assert linked.list_version() == 0
    assert linked.send_list("Full", 3, [("local-1", "Accepted"), ("blocked", "Blocked")]) == "Accepted"
    assert linked.list_version() == 3
    assert linked.send_list("Differential", 3, [("local-2", "Accepted")]) == "VersionMismatch"
    assert linked.send_list("Differential", 4, [("local-2", "Accepted"), ("blocked", None)]) == "Accepted"
    assert linked.send_list("Full", 5, [("x", None)]) == "Failed"
    assert {t.value for t in linked.auth.local_list.entries()} == {"local-1", "local-2"}
    assert linked.list_version() == 4
    # LocalPreAuthorize: a valid local entry needs no Authorize call
    decision = linked.auth.authorize(linked.token("local-1"), online=True)
    assert (decision.status, decision.source, linked.authorized) == ("Accepted", LOCAL_LIST, [])


@pytest.mark.usefixtures("no_leftover_threads")
def test_answers_fill_the_cache_and_clear_cache_empties_it(linked: Linked) -> None:
    ok, bad = linked.token("ok-1"), linked.token("bad-1")
    assert linked.auth.authorize(ok, online=True).source == CSMS
    assert linked.auth.authorize(bad, online=True).status == "Invalid"
    assert linked.authorized == ["ok-1", "bad-1"]
    assert linked.auth.authorize(ok, online=True).source == CACHE  # pre-authorized from the cache
    offline = linked.auth.authorize(bad, online=False)
    assert (offline.status, offline.source) == ("Invalid", CACHE)
    # an identifier the CSMS puts on the list leaves the cache (1.6 section 3.5.3)
    assert linked.send_list("Full", 1, [("ok-1", "Blocked")]) == "Accepted"
    assert linked.auth.cache.tokens() == [bad]
    assert linked.auth.authorize(ok, online=False).source == LOCAL_LIST
    assert linked.station.send(linked.m.ClearCacheRequest()).status == "Accepted"
    assert len(linked.auth.cache) == 0
    linked.auth.cache.enabled = False
    assert linked.station.send(linked.m.ClearCacheRequest()).status == "Rejected"


@pytest.mark.usefixtures("no_leftover_threads")
def test_a_reserved_evse_refuses_other_tags_until_cancelled(linked: Linked) -> None:
    r = linked.reservations
    assert linked.reserve(1, 1, "ok-1") == "Accepted"
    assert linked.reserve(2, 1, "ok-2") == "Occupied"
    assert linked.reserve(3, 5, "ok-2") == "Rejected"
    if not linked.v16:
        assert linked.reserve(4, 0, "ok-2") == "Rejected"  # 2.x EVSEs start at 1
    assert not r.may_charge(1, linked.token("ok-2")) and r.may_charge(1, linked.token("ok-1"))
    assert linked.station.send(linked.m.CancelReservationRequest(reservation_id=1)).status == "Accepted"
    assert linked.station.send(linked.m.CancelReservationRequest(reservation_id=1)).status == "Rejected"
    assert r.may_charge(1, linked.token("ok-2"))
    # "any EVSE": 1.6 connector 0, 2.x without evseId; a start by its token uses it
    assert linked.reserve(5, None, "ok-3") == "Accepted"
    used = r.use(2, linked.token("ok-3"))
    assert used is not None and (used.id, used.evse_id) == (5, ANY_EVSE)


@pytest.mark.usefixtures("no_leftover_threads")
def test_an_expired_reservation_ends_and_2_x_tells_the_csms(linked: Linked) -> None:
    assert linked.reserve(7, 2, "ok-1", minutes=5) == "Accepted"
    linked.clock.now = NOW + datetime.timedelta(minutes=5)
    assert [g.id for g in linked.reservations.tick()] == [7]
    assert linked.reservations.may_charge(2, linked.token("ok-2"))
    if not linked.v16:
        update = linked.station.expect(linked.m.ReservationStatusUpdateRequest, timeout=WAIT)
        assert (update.reservation_id, update.reservation_update_status) == (7, "Expired")
