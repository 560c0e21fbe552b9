"""Reading the cluster's event stream with a consumer group: at-least-once delivery.

An event stays pending in the group until it is acknowledged, so a consumer
that crashes between :meth:`EventConsumer.read` and :meth:`EventConsumer.ack`
gets it again when it restarts under the same name, and another consumer can
take it over with :meth:`EventConsumer.claim_stale`.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import redis

from ocpp_sync.cluster import _wire as wire
from ocpp_sync.errors import ClusterUnavailable
from ocpp_sync.protocol.codec import from_payload
from ocpp_sync.protocol.versions import version_module

__all__ = ["Event", "EventConsumer"]

log = logging.getLogger("ocpp_sync.cluster")


@attrs.frozen
class Event:
    """One request a station sent to some node of the cluster."""

    id: str
    station_id: str
    node_id: str
    version: str
    action: str
    payload: dict[str, Any]
    time: str

    @classmethod
    def from_fields(cls, entry_id: str, data: dict[str, str]) -> Event:
        return cls(id=entry_id, station_id=data.get("station", ""),
                   node_id=data.get("node", ""), version=data.get("version", ""),
                   action=data.get("action", ""), payload=json.loads(data.get("payload", "{}")),
                   time=data.get("time", ""))

    def request(self) -> Any:
        """The request object (leniently parsed: it was validated when it came in)."""
        cls = version_module(self.version).REQUESTS[self.action]
        return from_payload(cls, self.payload, lenient=True)


class EventConsumer:
    """One consumer in a consumer group on the cluster's event stream.

    ``start`` is where a new group begins: ``"0"`` for every event the stream
    still holds, ``"$"`` for only those published from now on.
    """

    def __init__(self, redis_client: str | redis.Redis, group: str, consumer: str, *,
                 prefix: str = "ocpp", start: str = "0") -> None:
        if isinstance(redis_client, str):
            self._redis = redis.Redis.from_url(redis_client, decode_responses=True, retry=wire.quick_retry(),
                                               socket_connect_timeout=2.0, socket_timeout=10.0)
            self._owns_redis = True
        else:
            self._redis = redis_client
            self._owns_redis = False
        self.stream = wire.Keys(prefix).events
        self.group = group
        self.consumer = consumer
        self.start = start
        self._backlog: str | None = "0"  # where our own unacknowledged events resume

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int = 100, block: float | None = 1.0) -> list[Event]:
        """Up to ``count`` events: first those delivered to us before and never acknowledged.

        ``block`` is how long to wait for new ones (None: do not wait).
        """
        for attempt in (1, 2):
            try:
                if self._backlog is not None:
                    events = self._read(self._backlog, count, None)
                    if events:
                        self._backlog = events[-1].id
                        return events
                    self._backlog = None
                return self._read(">", count, block)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc) or attempt == 2:
                    raise
                self._ensure_group()  # first use, or Redis lost the group (restart)
            except redis.RedisError as exc:
                raise ClusterUnavailable(f"cannot read events: {exc}") from exc
        return []

    def _read(self, from_id: str, count: int, block: float | None) -> list[Event]:
        reply = self._redis.xreadgroup(self.group, self.consumer, {self.stream: from_id},
                                       count=count,
                                       block=None if block is None else max(1, int(block * 1000)))
        events = []
        for entry_id, data in wire.stream_entries(reply):
            if data:
                events.append(Event.from_fields(entry_id, data))
            else:  # trimmed away while pending: nothing left to deliver
                self._redis.xack(self.stream, self.group, entry_id)
        return events

    def ack(self, *events: Event) -> int:
        """Mark events as processed, so no consumer gets them again."""
        if not events:
            return 0
        try:
            return int(self._redis.xack(self.stream, self.group, *(e.id for e in events)))
        except redis.RedisError as exc:
            raise ClusterUnavailable(f"cannot acknowledge events: {exc}") from exc

    def claim_stale(self, min_idle: float, count: int = 100) -> list[Event]:
        """Take over events another consumer got but did not acknowledge for ``min_idle`` s."""
        try:
            reply = self._redis.xautoclaim(self.stream, self.group, self.consumer,
                                           min_idle_time=int(min_idle * 1000), start_id="0-0",
                                           count=count)
        except redis.RedisError as exc:
            raise ClusterUnavailable(f"cannot claim events: {exc}") from exc
        return [Event.from_fields(entry_id, data)
                for entry_id, data in wire.stream_entries([(self.stream, reply[1])]) if data]

    def close(self) -> None:
        if self._owns_redis:
            self._redis.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
