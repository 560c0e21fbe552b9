"""Deciding whether an identifier may charge, from the local list, the cache and the CSMS,
and answering SendLocalList, GetLocalListVersion and ClearCache.

The order (1.6 sections 3.5 / 9.1 keys, 2.x AuthCtrlr variables of the same names):

- the station looks an identifier up in the local list first, then in the cache;
- online, it asks the CSMS, unless ``local_pre_authorize`` is on and the local entry
  authorizes (Accepted, not expired), when it starts at once;
- offline, with ``local_authorize_offline`` on, the local entry decides (an expired
  one reads Expired); an identifier it does not know is Accepted only with
  ``offline_unknown_allowed`` (1.6 AllowOfflineTxForUnknownId, 2.x
  OfflineTxForUnknownIdEnabled), and is otherwise Invalid (1.6) / Unknown (2.x);
- a 2.x entry limited to some EVSEs (``evseId``) refuses the others with NotAllowedTypeEVSE.

The CSMS's answers go to the cache, except for identifiers on the local list, which
the cache never holds (1.6 section 3.5.3). An answer that contradicts the list's
status is a conflict the station must report (1.6 section 3.5.2: StatusNotification,
connector 0, LocalListConflict); ``on_conflict`` hears of it.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.authcache import EXPIRED, AuthCache
from ocpp_sync.station.locallist import ListVerdict, LocalList
from ocpp_sync.station.smart import utc_now
from ocpp_sync.station.tokens import (
    ACCEPTED,
    IdToken,
    TokenInfo,
    info_from_answer,
    info_from_wire,
    token_from_wire,
    token_to_wire,
)

__all__ = ["AuthOptions", "Decision", "Authorization", "decide", "LOCAL_LIST", "CACHE", "CSMS",
           "OFFLINE_UNKNOWN", "NOWHERE"]

log = logging.getLogger("ocpp_sync.station.authorization")

#: Where a decision came from.
LOCAL_LIST = "LocalList"
CACHE = "Cache"
CSMS = "CSMS"
OFFLINE_UNKNOWN = "OfflineUnknown"
NOWHERE = "Nowhere"


@attrs.frozen
class AuthOptions:
    """The configuration that orders the decision; the defaults are the usual station's."""

    local_pre_authorize: bool = False
    local_authorize_offline: bool = True
    offline_unknown_allowed: bool = False


@attrs.frozen
class Decision:
    """The status an identifier gets, where it came from (:data:`LOCAL_LIST`, :data:`CACHE`,
    :data:`CSMS`, :data:`OFFLINE_UNKNOWN` or :data:`NOWHERE`) and the info it was based on."""

    status: str
    source: str
    info: TokenInfo | None = None

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED


def _local(token: IdToken, local_list: LocalList, cache: AuthCache,
           now: datetime.datetime) -> tuple[str, TokenInfo] | None:
    info = local_list.get(token)
    if info is not None:
        if info.expired_at(now):
            info = attrs.evolve(info, status=EXPIRED)
        return LOCAL_LIST, info
    cached = cache.get(token, now)
    return None if cached is None else (CACHE, cached)


def _limited(decision: Decision, evse_id: int | None) -> Decision:
    info = decision.info
    if decision.accepted and evse_id is not None and info is not None and info.evse_ids \
            and evse_id not in info.evse_ids:
        return attrs.evolve(decision, status="NotAllowedTypeEVSE")
    return decision


def decide(token: IdToken, *, online: bool, local_list: LocalList, cache: AuthCache,
           options: AuthOptions, now: datetime.datetime, evse_id: int | None = None) -> Decision | None:
    """The decision the station makes without the CSMS, or None when it must ask the CSMS.

    ``online`` says whether the CSMS can be reached; ``evse_id`` (2.x) where the identifier
    wants to charge, checked against the entry's EVSEs.
    """
    found = _local(token, local_list, cache, now)
    if online:
        if options.local_pre_authorize and found is not None and found[1].status == ACCEPTED:
            return _limited(Decision(ACCEPTED, found[0], found[1]), evse_id)
        return None
    if options.local_authorize_offline and found is not None:
        return _limited(Decision(found[1].status, found[0], found[1]), evse_id)
    if options.offline_unknown_allowed:
        return Decision(ACCEPTED, OFFLINE_UNKNOWN)
    return Decision("Invalid" if local_list.v16 else "Unknown", NOWHERE)


class Authorization:
    """The authorization of one charge point: ``local_list`` and ``cache`` under ``options``.

    ``clock`` gives the time expiries are compared with; ``timeout`` bounds an Authorize call;
    ``on_conflict(token, listed, answered)`` is called when the CSMS answers a status for a
    listed identifier other than the list's.
    """

    def __init__(self, local_list: LocalList, cache: AuthCache | None = None, *,
                 options: AuthOptions | None = None, clock: Callable[[], datetime.datetime] = utc_now,
                 timeout: float | None = None,
                 on_conflict: Callable[[IdToken, TokenInfo, TokenInfo], None] | None = None) -> None:
        self.local_list = local_list
        self.cache = cache if cache is not None else AuthCache()
        self.options = options if options is not None else AuthOptions()
        self.version = local_list.version
        self.clock = clock
        self.timeout = timeout
        self.on_conflict = on_conflict
        self._m: ModuleType = version_module(self.version)
        self._cp: Any = None

    # -- what the application asks and tells ---------------------------------------------------

    def authorize(self, token: IdToken, *, online: bool, evse_id: int | None = None) -> Decision:
        """Whether ``token`` may charge: locally when the rules allow, else by an Authorize call to
        the CSMS through the attached charge point. A call that fails is decided as offline."""
        now = self.clock()
        decision = decide(token, online=online, local_list=self.local_list, cache=self.cache,
                          options=self.options, now=now, evse_id=evse_id)
        if decision is not None:
            return decision
        if self._cp is None:
            raise RuntimeError("authorize(online=True) needs an attached charge point")
        try:
            answer = self._cp.send(self._authorize_request(token), timeout=self.timeout)
        except OCPPError as exc:
            log.warning("Authorize failed (%s): deciding offline", exc)
            return self.authorize(token, online=False, evse_id=evse_id)
        info = self.record(token, answer)
        assert info is not None  # an Authorize answer always carries the token info
        return _limited(Decision(info.status, CSMS, info), evse_id)

    def _authorize_request(self, token: IdToken) -> Any:
        if self.version == "1.6":
            return self._m.AuthorizeRequest(id_tag=token.value)
        return self._m.AuthorizeRequest(id_token=token_to_wire(self.version, token))

    def record(self, token: IdToken, answer: Any) -> TokenInfo | None:
        """Cache the token info of an Authorize, StartTransaction, StopTransaction or
        TransactionEvent ``answer`` about ``token``; returns it (None when the answer carries none)."""
        info = info_from_answer(self.version, answer)
        if info is None:
            return None
        listed = self.local_list.get(token)
        if listed is None:
            self.cache.store(token, info, self.clock())
        elif listed.status != info.status and self.on_conflict is not None:
            self.on_conflict(token, listed, info)
        return info

    # -- the handlers --------------------------------------------------------------------------

    def attach(self, cp: Any) -> None:
        """Answer the local list and cache requests of ``cp`` (a ChargePoint of the list's version)."""
        m = self._m
        self._cp = cp
        cp.on(m.SendLocalListRequest)(self.on_send_local_list)
        cp.on(m.GetLocalListVersionRequest)(self.on_get_local_list_version)
        cp.on(m.ClearCacheRequest)(self.on_clear_cache)

    def on_send_local_list(self, request: Any) -> Any:
        v16 = self.version == "1.6"
        changes = []
        for item in request.local_authorization_list or ():
            wire_token, wire_info = (item.id_tag, item.id_tag_info) if v16 else (item.id_token, item.id_token_info)
            changes.append((token_from_wire(self.version, wire_token),
                            None if wire_info is None else info_from_wire(self.version, wire_info)))
        list_version = request.list_version if v16 else request.version_number
        verdict = self.local_list.update(str(request.update_type), list_version, changes)
        if verdict.accepted:
            for token, _ in changes:
                self.cache.remove(token)
        if v16:
            return self._m.SendLocalListResponse(status=verdict.status)
        return self._m.SendLocalListResponse(status=verdict.status, status_info=self._status_info(verdict))

    def _status_info(self, verdict: ListVerdict) -> Any:
        if verdict.accepted:
            return None
        return self._m.StatusInfoType(reason_code=verdict.reason[:20], additional_info=verdict.detail[:512])

    def on_get_local_list_version(self, _request: Any) -> Any:
        if self.version == "1.6":
            return self._m.GetLocalListVersionResponse(list_version=self.local_list.list_version)
        return self._m.GetLocalListVersionResponse(version_number=self.local_list.list_version)

    def on_clear_cache(self, _request: Any) -> Any:
        return self._m.ClearCacheResponse(status="Accepted" if self.cache.clear() else "Rejected")
