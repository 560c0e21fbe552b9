"""A node's presence in the cluster: which stations it holds, kept fresh in Redis while they stay."""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from ocpp_sync.cluster import _wire as wire

log = logging.getLogger("ocpp_sync.cluster")

_PIPELINE = 1000         # presence refreshes per round trip
_CALLS_TTL_MS = 600_000  # a node's call stream vanishes this long after the node


class _Claim:
    """One local connection's presence entry."""

    __slots__ = ("station", "value")

    def __init__(self, station: Any, value: str) -> None:
        self.station = station
        self.value = value


class Presence:
    """The presence half of ``Cluster``; the fields are the cluster's, its lock guards ``_claims``."""

    csms: Any
    node_id: str | None
    keys: wire.Keys
    liveness: float
    presence_ttl: float
    _redis: redis.Redis
    _refresh: Any
    _release: Any
    _lock: threading.Lock
    _claims: dict[str, _Claim]
    _closed: bool
    _stop: threading.Event
    _clock_offset: float

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        raise NotImplementedError

    # -- presence -------------------------------------------------------

    def _on_connect(self, station: Any) -> None:
        value = wire.presence_value(self.node_id or "", uuid.uuid4().hex[:16], station.version)
        with self._lock:
            if self._closed or not station.connected:
                return  # a claim for a connection already gone would only mislead
            self._claims[station.id] = _Claim(station, value)
        try:
            previous = self._redis.set(self.keys.station(station.id), value,
                                       px=int(self.presence_ttl * 1000), get=True)
        except redis.RedisError as exc:
            log.warning("node %s: could not claim %r (%s); the keeper retries", self.node_id,
                        station.id, exc)
            return
        if previous is not None:
            old_node = wire.parse_presence(previous)[0]
            if old_node != self.node_id:
                log.info("station %r moved from node %s to node %s", station.id, old_node,
                         self.node_id)

    def _on_disconnect(self, station: Any) -> None:
        with self._lock:
            claim = self._claims.get(station.id)
            if claim is None or claim.station is not station:
                return  # a newer connection of the same id holds the claim now
            del self._claims[station.id]
        try:
            self._release(keys=[self.keys.station(station.id)], args=[claim.value])
        except redis.RedisError as exc:
            log.warning("node %s: could not release %r (%s); its entry expires in %.0f s",
                        self.node_id, station.id, exc, self.presence_ttl)

    def _beat(self) -> bool:
        """Heartbeat; True when our heartbeat key was gone (Redis restarted or we were silent)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.keys.node(self.node_id or ""), str(os.getpid()),
                 px=int(self.liveness * 1000), get=True)
        pipe.pexpire(self.keys.calls(self.node_id or ""), _CALLS_TTL_MS)
        pipe.time()
        before = time.time()
        previous, _, (seconds, micros) = pipe.execute()
        self._clock_offset = int(seconds) + int(micros) / 1e6 - (before + time.time()) / 2
        return previous is None

    def _refresh_presence(self) -> None:
        """Refresh every live local claim; re-create those Redis lost, adopt unclaimed stations."""
        adopted: set[str] = set()
        connected = self.csms.stations
        with self._lock:
            for station_id, station in connected.items():
                if station_id not in self._claims and station.connected:
                    value = wire.presence_value(self.node_id or "", uuid.uuid4().hex[:16],
                                                station.version)
                    self._claims[station_id] = _Claim(station, value)
                    adopted.add(station_id)
            # A connection can end while its connect callback still runs, so its
            # disconnect callback found nothing to release: sweep such claims here.
            ended = [(sid, c) for sid, c in self._claims.items() if not c.station.connected]
            for station_id, _ in ended:
                del self._claims[station_id]
            claims = list(self._claims.items())
        ttl = int(self.presence_ttl * 1000)
        if ended:
            pipe = self._redis.pipeline(transaction=False)
            for station_id, claim in ended:
                self._release(keys=[self.keys.station(station_id)], args=[claim.value], client=pipe)
            pipe.execute()
        for first in range(0, len(claims), _PIPELINE):
            chunk = claims[first:first + _PIPELINE]
            pipe = self._redis.pipeline(transaction=False)
            for station_id, claim in chunk:
                self._refresh(keys=[self.keys.station(station_id)],
                              args=[claim.value, ttl, f"{self.node_id}{wire.SEP}"], client=pipe)
            for (station_id, claim), outcome in zip(chunk, pipe.execute(), strict=True):
                if outcome == 2 and station_id not in adopted:
                    log.info("node %s: re-claimed %r (its entry was gone)", self.node_id,
                             station_id)
                elif outcome == 0:
                    self._evict(station_id, claim)

    def _evict(self, station_id: str, claim: _Claim) -> None:
        """Another node claimed the station after us: our connection is a stale one, close it.

        A station keeps one connection; if it opened another elsewhere, ours
        is half-open (or about to close), and serving calls on it would only
        time out. Closing may block, so it runs in its own thread.
        """
        with self._lock:
            if self._claims.get(station_id) is not claim or self._closed:
                return
            del self._claims[station_id]
        log.warning("node %s: %r is claimed by another node now; closing our older connection",
                    self.node_id, station_id)
        self._spawn(f"evict-{station_id}", claim.station.close)

    def _keep_loop(self) -> None:
        """Beat every liveness/3; refresh presence every presence_ttl/3, or at once after a gap."""
        beat_every = max(0.05, self.liveness / 3)
        refresh_every = max(0.05, self.presence_ttl / 3)
        next_refresh = time.monotonic() + refresh_every
        failing = False
        while not self._stop.wait(beat_every):
            try:
                lost = self._beat()
                if lost or failing or time.monotonic() >= next_refresh:
                    self._refresh_presence()
                    next_refresh = time.monotonic() + refresh_every
            except redis.RedisError as exc:
                if not failing:
                    log.warning("node %s: Redis unreachable (%s); retrying", self.node_id, exc)
                failing = True
                continue
            if failing or lost:
                log.info("node %s: presence re-asserted after Redis lost it", self.node_id)
            failing = False

