"""The authorization cache: what the CSMS last said about each identifier it was asked about.

Filled from the token info of Authorize, StartTransaction (1.6) and TransactionEvent
(2.x) answers. An entry past its ``expiry`` reads as Expired; one older than
``lifetime`` (2.x AuthCacheCtrlr LifeTime) is gone. When full, the cache drops first
the entries that no longer authorize (expired or not Accepted), then the least
recently used. ClearCache empties it, and is Rejected while the cache is disabled
(1.6 AuthorizationCacheEnabled, 2.x AuthCacheCtrlr Enabled).
"""
from __future__ import annotations

import datetime
import threading
from collections import OrderedDict

import attrs

from ocpp_sync.station.tokens import IdToken, TokenInfo

__all__ = ["AuthCache", "EXPIRED"]

EXPIRED = "Expired"


@attrs.frozen
class _Cached:
    info: TokenInfo
    stored_at: datetime.datetime


class AuthCache:
    """A bounded cache of token info; thread-safe, every method short, the time passed in.

    ``enabled`` mirrors the configuration key; ``max_entries`` bounds the cache;
    ``lifetime`` (None: no bound) is how long an entry lives after it was stored.
    """

    def __init__(self, *, enabled: bool = True, max_entries: int = 1000,
                 lifetime: datetime.timedelta | None = None) -> None:
        self.enabled = enabled
        self.max_entries = max_entries
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._entries: OrderedDict[IdToken, _Cached] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def tokens(self) -> list[IdToken]:
        """The cached identifiers, least recently used first."""
        with self._lock:
            return list(self._entries)

    def store(self, token: IdToken, info: TokenInfo, now: datetime.datetime) -> None:
        """Remember ``info`` for ``token`` (nothing while disabled), making room if full."""
        if not self.enabled or self.max_entries <= 0:
            return
        with self._lock:
            self._entries.pop(token, None)
            self._drop_lived_out(now)
            while len(self._entries) >= self.max_entries:
                del self._entries[self._victim(now)]
            self._entries[token] = _Cached(info, now)

    def get(self, token: IdToken, now: datetime.datetime) -> TokenInfo | None:
        """The cached info of ``token`` (status Expired once past its expiry); None if not cached
        or disabled. A hit counts as a use for the eviction order."""
        if not self.enabled:
            return None
        with self._lock:
            self._drop_lived_out(now)
            cached = self._entries.get(token)
            if cached is None:
                return None
            self._entries.move_to_end(token)
            info = cached.info
        return attrs.evolve(info, status=EXPIRED) if info.expired_at(now) else info

    def remove(self, token: IdToken) -> None:
        with self._lock:
            self._entries.pop(token, None)

    def clear(self) -> bool:
        """ClearCache: True (Accepted) when emptied, False (Rejected) while disabled."""
        if not self.enabled:
            return False
        with self._lock:
            self._entries.clear()
        return True

    def _victim(self, now: datetime.datetime) -> IdToken:
        for token, cached in self._entries.items():
            if not cached.info.valid_at(now):
                return token
        return next(iter(self._entries))

    def _drop_lived_out(self, now: datetime.datetime) -> None:
        if self.lifetime is None:
            return
        for token in [t for t, c in self._entries.items() if c.stored_at + self.lifetime <= now]:
            del self._entries[token]
