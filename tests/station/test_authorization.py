"""The local list's update rules, the cache and the offline decision, without sockets."""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_sync.errors import CallTimeout, OCPPError
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.station.authcache import AuthCache
from ocpp_sync.station.authorization import (
    CACHE,
    LOCAL_LIST,
    NOWHERE,
    OFFLINE_UNKNOWN,
    AuthOptions,
    Authorization,
    decide,
)
from ocpp_sync.station.locallist import DIFFERENTIAL, FULL, LocalList
from ocpp_sync.station.tokens import IdToken, TokenInfo

T0 = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.timezone.utc)
MINUTE = datetime.timedelta(minutes=1)
OK = TokenInfo("Accepted")
BLOCKED = TokenInfo("Blocked")
A, B, C = IdToken("A", "ISO14443"), IdToken("B", "ISO14443"), IdToken("C", "ISO14443")


# -- the local list ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_full_then_differential_updates_and_deletes(version: str) -> None:
    local = LocalList(version)
    assert local.list_version == 0
    assert local.update(FULL, 3, [(A, OK), (B, BLOCKED)]).accepted
    assert (local.list_version, local.get(A), local.get(B)) == (3, OK, BLOCKED)
    assert local.update(DIFFERENTIAL, 4, [(B, OK), (A, None), (C, BLOCKED)]).accepted
    assert local.entries() == {B: OK, C: BLOCKED}
    assert local.list_version == 4
    # a Differential update without entries only moves the version (D01.FR.05)
    assert local.update(DIFFERENTIAL, 5, []).accepted and local.list_version == 5 and len(local) == 2
    # a Full update may set a lower version; an empty one clears the list
    assert local.update(FULL, 2, []).accepted and local.entries() == {}
    assert local.list_version == (0 if version == "1.6" else 2)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_what_a_list_update_refuses_changes_nothing(version: str) -> None:
    local = LocalList(version, max_entries=2, items_per_message=2)
    assert local.update(FULL, 5, [(A, OK)]).accepted
    mismatch = local.update(DIFFERENTIAL, 5, [(B, OK)])
    assert (mismatch.status, mismatch.reason) == ("VersionMismatch", "VersionMismatch")
    assert local.update(DIFFERENTIAL, 4, [(B, OK)]).status == "VersionMismatch"
    assert local.update(FULL, 0, [(B, OK)]).reason == "InvalidVersion"
    assert local.update(FULL, 6, [(A, OK), (B, OK), (C, OK)]).reason == "TooManyItems"
    assert local.update(FULL, 6, [(A, OK), (A, BLOCKED)]).reason == "DuplicateToken"
    assert local.update(FULL, 6, [(A, None)]).reason == "MissingInfo"
    assert local.update(DIFFERENTIAL, 6, [(B, OK), (C, OK)]).reason == "ListFull"
    assert local.update("Partial", 6, []).reason == "InvalidUpdateType"
    assert (local.list_version, local.entries()) == (5, {A: OK})
    # the same value of another type is another token (2.x); 1.6 tokens have no type
    assert local.get(IdToken("A")) is None
    # values are case-insensitive strings in both versions
    assert local.get(IdToken("a", "ISO14443")) == OK


def test_a_disabled_list_is_not_supported_in_1_6_and_fails_in_2_x() -> None:
    old = LocalList("1.6", enabled=False)
    assert old.update(FULL, 1, [(A, OK)]).status == "NotSupported" and old.list_version == -1
    new = LocalList("2.0.1", enabled=False)
    assert new.update(FULL, 1, [(A, OK)]).status == "Failed" and new.list_version == 0
    assert new.get(A) is None


def reference_update(version: str, state: tuple[int, dict[str, str]], kind: str, number: int,
                     items: list[tuple[str, str | None]], max_entries: int,
                     per_message: int) -> tuple[str, tuple[int, dict[str, str]]]:
    """The rules written plainly, over token names and status strings."""
    current, entries = state
    if number < 1:
        return "Failed", state
    if kind == "Differential" and number <= current:
        return "VersionMismatch", state
    names = [name for name, _ in items]
    if len(items) > per_message or len(set(names)) != len(names):
        return "Failed", state
    if kind == "Full":
        if None in [status for _, status in items]:
            return "Failed", state
        new = {name: str(status) for name, status in items}
    else:
        new = dict(entries)
        for name, status in items:
            if status is None:
                new.pop(name, None)
            else:
                new[name] = status
    if len(new) > max_entries:
        return "Failed", state
    if version == "1.6" and not new:
        return "Accepted", (0, new)
    return "Accepted", (number, new)


update_steps = st.lists(st.tuples(
    st.sampled_from(["Full", "Differential"]), st.integers(-1, 12),
    st.lists(st.tuples(st.sampled_from("ABCDE"), st.sampled_from(["Accepted", "Blocked", None])), max_size=5)),
    max_size=12)


@settings(max_examples=120, deadline=None)
@given(version=st.sampled_from(["1.6", "2.0.1"]), steps=update_steps)
def test_the_update_rules_match_the_reference_model(version: str, steps: list[Any]) -> None:
    local = LocalList(version, max_entries=3, items_per_message=4)
    state: tuple[int, dict[str, str]] = (0, {})
    for kind, number, items in steps:
        expected, state = reference_update(version, state, kind, number, items, 3, 4)
        changes = [(IdToken(name), None if status is None else TokenInfo(status)) for name, status in items]
        assert local.update(kind, number, changes).status == expected
        assert local.list_version == state[0]
        assert {t.value: i.status for t, i in local.entries().items()} == state[1]


def test_the_list_persists_to_its_file_and_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "local-list.json"
    local = LocalList("2.0.1", path=path)
    group = IdToken("G", "Central")
    rich = TokenInfo("Accepted", expiry=T0, group=group, evse_ids=(1, 2))
    assert local.update(FULL, 7, [(A, rich), (B, BLOCKED)]).accepted
    again = LocalList("2.0.1", path=path)
    assert (again.list_version, again.entries()) == (7, {A: rich, B: BLOCKED})
    assert local.update(DIFFERENTIAL, 6, [(C, OK)]).status == "VersionMismatch"
    assert LocalList("2.0.1", path=path).entries() == {A: rich, B: BLOCKED}
    assert [p.name for p in tmp_path.iterdir()] == ["local-list.json"]  # no temporary file left
    assert json.loads(path.read_text())["version"] == 7


def test_an_unsaved_update_fails_and_a_broken_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "list.json"
    local = LocalList("1.6", path=path)
    failed = local.update(FULL, 1, [(IdToken("A"), OK)])
    assert (failed.status, failed.reason) == ("Failed", "WriteFailed") and len(local) == 0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(OCPPError, match="cannot be read"):
        LocalList("1.6", path=broken)


# -- the cache ---------------------------------------------------------------------------------

def test_the_cache_reads_expired_entries_as_expired_and_drops_lived_out_ones() -> None:
    cache = AuthCache(lifetime=10 * MINUTE)
    cache.store(A, TokenInfo("Accepted", expiry=T0 + MINUTE), T0)
    assert cache.get(A, T0) == TokenInfo("Accepted", expiry=T0 + MINUTE)
    assert cache.get(A, T0 + MINUTE).status == "Expired"  # type: ignore[union-attr]
    assert cache.get(A, T0 + 10 * MINUTE) is None and len(cache) == 0


def test_a_full_cache_drops_entries_that_no_longer_authorize_then_the_least_recently_used() -> None:
    cache = AuthCache(max_entries=3)
    cache.store(A, OK, T0)
    cache.store(B, BLOCKED, T0)
    cache.store(C, OK, T0)
    d, e = IdToken("D"), IdToken("E")
    cache.store(d, OK, T0)  # B does not authorize: it goes first
    assert cache.tokens() == [A, C, d]
    assert cache.get(A, T0) == OK  # A is used: C is now the least recently used
    cache.store(e, OK, T0)
    assert cache.tokens() == [d, A, e]


def test_clear_cache_is_rejected_while_the_cache_is_disabled() -> None:
    cache = AuthCache()
    cache.store(A, OK, T0)
    assert cache.clear() and len(cache) == 0
    disabled = AuthCache(enabled=False)
    disabled.store(A, OK, T0)
    assert not disabled.clear() and disabled.get(A, T0) is None and len(disabled) == 0


# -- the decision ------------------------------------------------------------------------------

def stores(version: str = "2.0.1") -> tuple[LocalList, AuthCache]:
    local, cache = LocalList(version), AuthCache()
    local.update(FULL, 1, [(A, OK), (B, BLOCKED), (IdToken("X", "ISO14443"), TokenInfo("Accepted", expiry=T0))])
    cache.store(C, OK, T0)
    cache.store(B, OK, T0)  # the local list wins over the cache
    return local, cache


def test_online_asks_the_csms_unless_pre_authorize_finds_a_valid_local_entry() -> None:
    local, cache = stores()
    plain = AuthOptions()
    assert decide(A, online=True, local_list=local, cache=cache, options=plain, now=T0) is None
    pre = AuthOptions(local_pre_authorize=True)
    assert decide(A, online=True, local_list=local, cache=cache, options=pre, now=T0).source == LOCAL_LIST  # type: ignore[union-attr]
    assert decide(C, online=True, local_list=local, cache=cache, options=pre, now=T0).source == CACHE  # type: ignore[union-attr]
    for refused in (B, IdToken("X", "ISO14443"), IdToken("new", "ISO14443")):
        assert decide(refused, online=True, local_list=local, cache=cache, options=pre, now=T0) is None


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_offline_the_local_entry_decides_and_unknown_ids_follow_the_option(version: str) -> None:
    local, cache = stores(version)
    plain = AuthOptions()

    def offline(token: IdToken, options: AuthOptions = plain) -> tuple[str, str]:
        d = decide(token, online=False, local_list=local, cache=cache, options=options, now=T0)
        assert d is not None
        return d.status, d.source

    assert offline(A) == ("Accepted", LOCAL_LIST)
    assert offline(B) == ("Blocked", LOCAL_LIST)
    assert offline(IdToken("X", "ISO14443")) == ("Expired", LOCAL_LIST)
    assert offline(C) == ("Accepted", CACHE)
    unknown = IdToken("new", "ISO14443")
    assert offline(unknown) == ("Invalid" if version == "1.6" else "Unknown", NOWHERE)
    assert offline(unknown, AuthOptions(offline_unknown_allowed=True)) == ("Accepted", OFFLINE_UNKNOWN)
    # without LocalAuthorizeOffline every identifier is unknown offline
    assert offline(A, AuthOptions(local_authorize_offline=False)) == (
        "Invalid" if version == "1.6" else "Unknown", NOWHERE)


def test_an_entry_limited_to_some_evses_refuses_the_others() -> None:
    local, cache = LocalList("2.0.1"), AuthCache()
    local.update(FULL, 1, [(A, TokenInfo("Accepted", evse_ids=(2,)))])
    here = decide(A, online=False, local_list=local, cache=cache, options=AuthOptions(), now=T0, evse_id=2)
    there = decide(A, online=False, local_list=local, cache=cache, options=AuthOptions(), now=T0, evse_id=1)
    assert here is not None and here.accepted
    assert there is not None and there.status == "NotAllowedTypeEVSE"


class FailingLink:
    """A charge point whose every call times out, as one that lost the CSMS."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def on(self, _message: type) -> Any:
        return lambda handler: handler

    def send(self, message: Any, timeout: float | None = None) -> Any:
        self.sent.append(message)
        raise CallTimeout("no answer")


def test_a_failed_authorize_call_is_decided_offline_and_list_tokens_stay_out_of_the_cache() -> None:
    local = LocalList("1.6")
    local.update(FULL, 1, [(IdToken("L"), OK)])
    conflicts: list[tuple[str, str, str]] = []
    auth = Authorization(local, AuthCache(), options=AuthOptions(offline_unknown_allowed=True), clock=lambda: T0,
                         on_conflict=lambda t, listed, answered: conflicts.append(
                             (t.value, listed.status, answered.status)))
    with pytest.raises(RuntimeError, match="attached"):
        auth.authorize(IdToken("N"), online=True)
    link = FailingLink()
    auth.attach(link)
    decision = auth.authorize(IdToken("N"), online=True)
    assert (decision.status, decision.source) == ("Accepted", OFFLINE_UNKNOWN)
    assert [m.id_tag for m in link.sent] == ["N"]
    m = version_module("1.6")
    answer = m.StartTransactionResponse(transaction_id=1, id_tag_info=m.IdTagInfo(status="Blocked"))
    assert auth.record(IdToken("L"), answer) == BLOCKED and len(auth.cache) == 0
    assert conflicts == [("L", "Accepted", "Blocked")]  # the list said Accepted
    assert auth.record(IdToken("N"), answer) == BLOCKED and auth.cache.tokens() == [IdToken("N")]
