"""Several CSMS processes behind one Redis: presence, routing of calls, liveness, events.

Who holds which station is a Redis key per station (``node, connection token,
version``) with a TTL that the node's keeper thread refreshes while the
connection lives. Removal is fenced by the token, so a node never removes a
claim made by a newer connection (on another node or on itself).

Calls to a station on another node go through that node's call stream and
come back on the caller's own reply stream, matched by a correlation id.
Each node keeps a heartbeat key with a short TTL: a caller whose station sits
on a node that stopped beating gets StationNotConnected at once instead of
waiting for the timeout.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, cast

import redis

from ocpp_sync.cluster import _wire as wire
from ocpp_sync.cluster._presence import Presence, _Claim
from ocpp_sync.errors import CallTimeout, ClusterUnavailable, ConnectionClosed, OCPPError, StationNotConnected
from ocpp_sync.protocol.codec import from_payload, to_payload
from ocpp_sync.protocol.versions import message_info, version_module
from ocpp_sync.scheduling.futures import settle
from ocpp_sync.signatures import check_handler

__all__ = ["Cluster", "Location"]

log = logging.getLogger("ocpp_sync.cluster")

F = TypeVar("F", bound=Callable[..., Any])
_Fields = dict[Any, Any]  # redis-py's stubs want a dict keyed by a union; ours are str

_BLOCK_MS = 200          # longest blocking stream read, so close() is prompt
_JOIN_TIMEOUT = 5.0
_RETRY_PAUSE = 0.25      # between attempts while Redis is unreachable
_GRACE = 1.0             # extra wait for the node's own CallTimeout to travel back
_STREAM_MAXLEN = 10_000  # approximate cap of call and reply streams
_REPLY_TTL_MS = 120_000  # a caller's reply stream outlives the caller by this much
_BATCH = 100
_CALLS_GROUP = "node"    # the consumer group on a node's call stream


class Location(NamedTuple):
    """Where a station is connected: the node id, its OCPP version, and whether the node is alive."""

    node_id: str
    version: str
    alive: bool


class _Remote:
    """One call waiting for its reply from another node."""

    __slots__ = ("future", "station_id", "node_id", "response_cls", "deadline")

    def __init__(self, future: Future[Any], station_id: str, response_cls: type | None,
                 deadline: float) -> None:
        self.future = future
        self.station_id = station_id
        self.node_id: str | None = None
        self.response_cls = response_cls
        self.deadline = deadline


class Cluster(Presence):
    """A CSMS node in a cluster, or (without ``csms``) a client that only calls stations.

    ``redis_client`` is a URL or a ``redis.Redis`` client (whose socket timeout,
    if any, must exceed the 0.2 s blocking reads). A node (``csms`` given)
    publishes which stations it holds and serves calls routed to them once
    :meth:`start` ran; a client-only object (a web worker, a script) just
    calls :meth:`send`. ``liveness`` is how long a node may stay silent before
    calls to its stations fail with StationNotConnected; ``presence_ttl`` how
    long a claim survives a node that stopped refreshing it. With
    ``publish_events``, requests answered by handlers registered through
    :meth:`on` are appended to the cluster's event stream before the handler
    runs (see :class:`EventConsumer`).
    """

    def __init__(self, redis_client: str | redis.Redis = "redis://127.0.0.1:6379/0", *,
                 csms: Any = None, node_id: str | None = None, prefix: str = "ocpp",
                 timeout: float = 30.0, liveness: float = 10.0, presence_ttl: float = 30.0,
                 publish_events: bool = False, events_maxlen: int = 100_000) -> None:
        if liveness <= 0 or presence_ttl <= 0:
            raise ValueError("liveness and presence_ttl must be positive")
        if isinstance(redis_client, str):
            self._redis = redis.Redis.from_url(redis_client, decode_responses=True, retry=wire.quick_retry(),
                                               socket_connect_timeout=2.0, socket_timeout=5.0)
            self._owns_redis = True
        else:
            self._redis = redis_client
            self._owns_redis = False
        self.csms = csms
        self.node_id = node_id or (f"{socket.gethostname()}-{os.getpid()}" if csms is not None
                                   else None)
        if self.node_id is not None and (wire.SEP in self.node_id or not self.node_id):
            raise ValueError(f"bad node id {self.node_id!r}")
        self.keys = wire.Keys(prefix)
        self.timeout = timeout
        self.liveness = liveness
        self.presence_ttl = presence_ttl
        self.publish_events = publish_events
        self.events_maxlen = events_maxlen
        self._client_id = f"{self.node_id or 'client'}-{uuid.uuid4().hex[:12]}"
        self._reply_key = self.keys.replies(self._client_id)
        # How often a caller checks deadlines and the nodes its calls wait on.
        self._tick = max(0.05, min(0.5, liveness / 4))
        self._refresh = self._redis.register_script(wire.REFRESH)
        self._release = self._redis.register_script(wire.RELEASE)
        self._route = self._redis.register_script(wire.ROUTE)
        # _lock guards _claims, _remote, _threads, _listener, _started and _closed.
        self._lock = threading.Lock()
        self._claims: dict[str, _Claim] = {}
        self._remote: dict[str, _Remote] = {}
        self._threads: list[threading.Thread] = []
        self._listener: threading.Thread | None = None
        self._started = False
        self._closed = False
        self._stop = threading.Event()
        self._replies: queue.SimpleQueue[tuple[str, dict[str, str]] | None] = queue.SimpleQueue()
        self._clock_offset = 0.0  # Redis clock minus ours, in seconds

    # -- life cycle -----------------------------------------------------

    def start(self) -> Cluster:
        """Join the cluster: claim local stations, beat, serve routed calls. Nodes only."""
        if self.csms is None:
            raise RuntimeError("a client-only Cluster has nothing to start; just call send()")
        with self._lock:
            if self._closed:
                raise RuntimeError("this Cluster is closed")
            if self._started:
                return self
            self._started = True
        self.csms.on_connect(self._on_connect)
        self.csms.on_disconnect(self._on_disconnect)
        try:
            self._beat()
            self._refresh_presence()
        except redis.RedisError as exc:
            log.warning("node %s: Redis unreachable at start (%s); retrying in the background",
                        self.node_id, exc)
        for name, target in (("keeper", self._keep_loop), ("calls", self._calls_loop),
                             ("replies", self._reply_loop)):
            self._spawn(name, target)
        log.info("node %s joined the cluster %r", self.node_id, self.keys.prefix)
        return self

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        """Start a thread that close() joins (unless close() has begun: then not at all)."""
        thread = threading.Thread(target=target, name=f"ocpp-cluster-{self.node_id or 'client'}-{name}",
                                  daemon=True)
        with self._lock:
            if self._closed:
                return
            self._threads = [t for t in self._threads if t.is_alive() or t.ident is None]
            self._threads.append(thread)
            thread.start()

    def close(self) -> None:
        """Leave the cluster: stop and join the threads, drop our claims and heartbeat. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._threads = self._threads, []
            claims, self._claims = self._claims, {}
            remote, self._remote = self._remote, {}
        self._stop.set()
        self._replies.put(None)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("%s did not stop within %.0f s", thread.name, _JOIN_TIMEOUT)
        for call in remote.values():
            settle(call.future, exc=ClusterUnavailable("the cluster client was closed"))
        if self._started:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for station_id, claim in claims.items():
                    self._release(keys=[self.keys.station(station_id)], args=[claim.value],
                                  client=pipe)
                pipe.delete(self.keys.node(self.node_id or ""))
                pipe.execute()
            except redis.RedisError as exc:
                log.warning("node %s: could not remove its entries from Redis: %s",
                            self.node_id, exc)
        if self._owns_redis:
            self._redis.close()
        log.info("%s left the cluster", self.node_id or self._client_id)

    def __enter__(self) -> Cluster:
        if self.csms is not None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- serving routed calls (nodes) -------------------------------------

    def _calls_loop(self) -> None:
        """Serve the node's call stream, through a consumer group that remembers our place.

        The group's last-delivered id lives in Redis, so a node restarted under
        the same id serves the calls queued while it was down (each checked
        against its timeout) and never replays one it already delivered.
        NOACK: a call is at-most-once; nobody would be waiting for a redelivery.
        """
        key = self.keys.calls(self.node_id or "")
        failing = False
        while not self._stop.is_set():
            try:
                batch = self._redis.xreadgroup(_CALLS_GROUP, self.node_id or "", {key: ">"},
                                               count=_BATCH, block=_BLOCK_MS, noack=True)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # first start, or Redis lost it (restart)
                    self._create_calls_group(key)
                else:
                    log.error("node %s: reading routed calls failed: %s", self.node_id, exc)
                    self._stop.wait(_RETRY_PAUSE)
                continue
            except redis.RedisError as exc:
                if not failing:
                    log.warning("node %s: cannot read routed calls (%s); retrying", self.node_id,
                                exc)
                failing = True
                self._stop.wait(_RETRY_PAUSE)
                continue
            failing = False
            for entry_id, call in wire.stream_entries(batch):
                self._serve_call(entry_id, call)

    def _create_calls_group(self, key: str) -> None:
        try:
            self._redis.xgroup_create(key, _CALLS_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # BUSYGROUP: it exists, which is all we need
                log.error("node %s: cannot create its call group: %s", self.node_id, exc)
                self._stop.wait(_RETRY_PAUSE)
        except redis.RedisError:
            self._stop.wait(_RETRY_PAUSE)  # unreachable: the next read reports it

    def _serve_call(self, entry_id: str, call: dict[str, str]) -> None:
        reply_to, corr = call.get("reply", ""), call.get("id", "")
        if not reply_to or not corr:
            log.warning("node %s: dropped a malformed routed call %s", self.node_id, entry_id)
            return
        station_id = call.get("station", "")
        try:
            age = time.time() + self._clock_offset - wire.ms_of(entry_id) / 1000
            remaining = float(call.get("timeout", self.timeout)) - max(0.0, age)
            if remaining <= 0:
                log.info("node %s: dropped a call to %r that waited past its timeout",
                         self.node_id, station_id)
                return
            station = self.csms.stations.get(station_id)
            if station is None or not station.connected:
                raise StationNotConnected(f"station {station_id!r} is not connected to node "
                                          f"{self.node_id}")
            version = call.get("version", "")
            if station.version != version:
                raise OCPPError(f"station {station_id!r} speaks OCPP {station.version}, "
                                f"not {version}", code="NotSupported")
            request_cls = version_module(version).REQUESTS[call.get("action", "")]
            request = from_payload(request_cls, json.loads(call.get("payload", "{}")))
            future = station.send_async(request, remaining)
        except Exception as exc:  # every failure goes back to the caller, typed
            self._replies.put((reply_to, {"id": corr, **wire.error_fields(exc)}))
            return
        future.add_done_callback(lambda f: self._answered(reply_to, corr, f))

    def _answered(self, reply_to: str, corr: str, future: Future[Any]) -> None:
        """Runs in the station's reader thread: only queue, the reply thread writes."""
        if future.cancelled():
            return
        try:
            response = future.result()
            payload = None if response is None else to_payload(response)
            data = {"id": corr, "ok": "1", "payload": wire.payload_json(payload)}
        except Exception as exc:  # the station's error, or a response we cannot encode
            data = {"id": corr, **wire.error_fields(exc)}
        self._replies.put((reply_to, data))

    def _reply_loop(self) -> None:
        done = False
        while not done:
            item = self._replies.get()
            batch = []
            while item is not None:
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._replies.get_nowait()
                except queue.Empty:
                    break
            done = item is None
            if not batch:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for reply_to, data in batch:
                pipe.xadd(reply_to, cast(_Fields, data), maxlen=_STREAM_MAXLEN, approximate=True)
                pipe.pexpire(reply_to, _REPLY_TTL_MS)
            try:
                pipe.execute()
            except redis.RedisError as exc:
                log.warning("node %s: lost %d replies, Redis unreachable: %s", self.node_id,
                            len(batch), exc)

    # -- calling stations (any process) ------------------------------------

    def send(self, station_id: str, request: Any, timeout: float | None = None) -> Any:
        """Call a station wherever it is connected and block for the response object.

        Raises CallError, CallTimeout, StationNotConnected, ClusterUnavailable,
        or ValidationError (before anything is sent) for an invalid request.
        """
        seconds = self.timeout if timeout is None else timeout
        future = self.send_async(station_id, request, seconds)
        try:
            return future.result(seconds + _GRACE + 1.0)
        except FutureTimeout:
            raise CallTimeout(f"no answer from station {station_id!r} within {seconds:g} s") from None

    def send_async(self, station_id: str, request: Any, timeout: float | None = None) -> Future[Any]:
        """Like :meth:`send`, but returns a Future at once."""
        seconds = self.timeout if timeout is None else timeout
        info = message_info(request)
        if not info.is_request:
            raise ValueError(f"{type(request).__name__} is a response; send requests")
        payload = to_payload(request)
        local = self._local(station_id)
        if local is not None:
            return self._local_call(local, request, seconds)
        response_cls = version_module(info.version).RESPONSES.get(info.action)
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        corr = uuid.uuid4().hex
        call = _Remote(future, station_id, response_cls, time.monotonic() + seconds + _GRACE)
        self._ensure_listener()
        with self._lock:
            if self._closed:
                raise ClusterUnavailable("this Cluster is closed")
            self._remote[corr] = call
        fields = {"id": corr, "reply": self._reply_key, "station": station_id,
                  "action": info.action, "version": info.version,
                  "payload": wire.payload_json(payload), "timeout": repr(seconds)}
        args: list[Any] = [self.keys.prefix, _STREAM_MAXLEN, info.version]
        for name, value in fields.items():
            args += [name, value]
        try:
            outcome = self._route(keys=[self.keys.station(station_id)], args=args)
        except redis.RedisError as exc:
            self._forget(corr)
            raise ClusterUnavailable(f"cannot reach the cluster's Redis: {exc}") from exc
        status = int(outcome[0])
        if status == 2:
            node_id = wire.parse_presence(outcome[1])[0]
            with self._lock:
                call.node_id = node_id
            return future
        self._forget(corr)
        if status == 0:
            raise StationNotConnected(f"station {station_id!r} is not connected to the cluster")
        node_id, _, version = wire.parse_presence(outcome[1])
        if status == 1:
            raise StationNotConnected(f"station {station_id!r} was on node {node_id}, "
                                      "which is not alive")
        raise ValueError(f"station {station_id!r} speaks OCPP {version}, "
                         f"the request is OCPP {info.version}")

    def call(self, station_id: str, action: str, payload: dict[str, Any], *,
             version: str | None = None, timeout: float | None = None) -> dict[str, Any] | None:
        """Wire-format payload in and out; the version defaults to the station's."""
        if version is None:
            where = self.locate(station_id)
            if where is None:
                raise StationNotConnected(f"station {station_id!r} is not connected to the cluster")
            version = where.version
        module = version_module(version)
        try:
            request_cls = module.REQUESTS[action]
        except KeyError:
            raise ValueError(f"{action!r} is not an OCPP {version} action") from None
        response = self.send(station_id, from_payload(request_cls, dict(payload)), timeout)
        return None if response is None else to_payload(response)

    def _local(self, station_id: str) -> Any:
        if self.csms is None or not self._started:
            return None
        station = self.csms.stations.get(station_id)
        return station if station is not None and station.connected else None

    def _local_call(self, station: Any, request: Any, seconds: float) -> Future[Any]:
        outer: Future[Any] = Future()
        outer.set_running_or_notify_cancel()

        def relay(inner: Future[Any]) -> None:
            exc = inner.exception() if not inner.cancelled() else StationNotConnected("cancelled")
            if isinstance(exc, ConnectionClosed) and not isinstance(exc, StationNotConnected):
                exc = StationNotConnected(f"station {station.id!r}: {exc}")
            if exc is not None:
                settle(outer, exc=exc)
            else:
                settle(outer, inner.result())

        try:
            inner = station.send_async(request, seconds)
        except ConnectionClosed as exc:
            raise StationNotConnected(f"station {station.id!r}: {exc}") from exc
        inner.add_done_callback(relay)
        return outer

    def _forget(self, corr: str) -> _Remote | None:
        with self._lock:
            return self._remote.pop(corr, None)

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._listener is not None or self._closed:
                return
            self._listener = threading.Thread(
                target=self._listen_loop, name=f"ocpp-cluster-{self._client_id}-listener",
                daemon=True)
            self._threads.append(self._listener)
        self._listener.start()

    def _listen_loop(self) -> None:
        last = "0-0"
        next_check = time.monotonic() + self._tick
        while not self._stop.is_set():
            try:
                batch = self._redis.xread({self._reply_key: last}, count=_BATCH, block=_BLOCK_MS)
            except redis.RedisError as exc:
                self._fail_remote(ClusterUnavailable(f"lost contact with the cluster's Redis: {exc}"))
                self._stop.wait(_RETRY_PAUSE)
                continue
            for entry_id, data in wire.stream_entries(batch):
                last = entry_id
                self._deliver(data)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self._tick
                self._check_remote()

    def _deliver(self, data: dict[str, str]) -> None:
        call = self._forget(data.get("id", ""))
        if call is None:
            log.info("dropped a late reply from the cluster (its call timed out)")
            return
        if data.get("ok") != "1":
            settle(call.future, exc=wire.error_from(data))
            return
        try:
            payload = json.loads(data.get("payload", "null"))
            response = (None if payload is None or call.response_cls is None
                        else from_payload(call.response_cls, payload, lenient=True))
        except (ValueError, OCPPError) as exc:
            settle(call.future, exc=exc)
            return
        settle(call.future, response)

    def _check_remote(self) -> None:
        """Fail calls past their deadline, and calls held by nodes that stopped beating."""
        now = time.monotonic()
        with self._lock:
            late = [c for c, call in self._remote.items() if call.deadline <= now]
            nodes = sorted({call.node_id for call in self._remote.values() if call.node_id})
        for corr in late:
            call = self._forget(corr)
            if call is not None:
                settle(call.future, exc=CallTimeout(
                    f"no answer from station {call.station_id!r} within the timeout"))
        if not nodes:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for node_id in nodes:
                pipe.exists(self.keys.node(node_id))
            alive = pipe.execute()
        except redis.RedisError:
            return  # the next read reports it
        dead = {node_id for node_id, up in zip(nodes, alive, strict=True) if not up}
        if not dead:
            return
        with self._lock:
            lost = [c for c, call in self._remote.items() if call.node_id in dead]
        for corr in lost:
            call = self._forget(corr)
            if call is not None:
                settle(call.future, exc=StationNotConnected(
                    f"station {call.station_id!r} was on node {call.node_id}, which stopped "
                    "answering"))

    def _fail_remote(self, exc: OCPPError) -> None:
        with self._lock:
            remote, self._remote = self._remote, {}
        for call in remote.values():
            settle(call.future, exc=exc)

    # -- looking around ------------------------------------------------------

    def locate(self, station_id: str) -> Location | None:
        """Where a station is connected, or None if no node claims it."""
        value = self._redis.get(self.keys.station(station_id))
        if value is None:
            return None
        node_id, _, version = wire.parse_presence(value)
        return Location(node_id, version, bool(self._redis.exists(self.keys.node(node_id))))

    def nodes(self) -> list[str]:
        """Ids of the nodes that are alive now."""
        cut = len(self.keys.node(""))
        return sorted(wire.text(k)[cut:] for k in self._redis.scan_iter(self.keys.node_pattern()))

    def stations(self) -> dict[str, Location]:
        """Every claimed station, by id (a SCAN: for tools and dashboards, not hot paths)."""
        cut = len(self.keys.station(""))
        alive = set(self.nodes())
        out: dict[str, Location] = {}
        for key in self._redis.scan_iter(self.keys.station_pattern(), count=1000):
            value = self._redis.get(key)
            if value is not None:
                node_id, _, version = wire.parse_presence(value)
                out[wire.text(key)[cut:]] = Location(node_id, version, node_id in alive)
        return out

    # -- events ---------------------------------------------------------------

    def on(self, request_cls: type[Any]) -> Callable[[F], F]:
        """Register a CSMS handler (like ``csms.on``) whose requests also go to the event stream."""
        if self.csms is None:
            raise RuntimeError("a client-only Cluster has no CSMS to register handlers with")

        def register(handler: F) -> F:
            check_handler(handler, ("station", "request"), "CSMS handlers")

            def publishing(station: Any, request: Any) -> Any:
                if self.publish_events:
                    self.publish(station, request)
                return handler(station, request)

            publishing.__wrapped__ = handler  # type: ignore[attr-defined]
            self.csms.on(request_cls)(publishing)
            return handler

        return register

    def publish(self, station: Any, request: Any) -> str:
        """Append a station's request to the event stream; returns the entry id.

        Raises ClusterUnavailable if Redis is down: from a handler that makes
        the station's call fail with InternalError, and the station sends it
        again later, so no event is lost (at-least-once end to end).
        """
        info = message_info(request)
        data = {"station": station.id, "node": self.node_id or "", "version": info.version,
                "action": info.action, "payload": wire.payload_json(to_payload(request)),
                "time": datetime.now(timezone.utc).isoformat()}
        try:
            entry = self._redis.xadd(self.keys.events, cast(_Fields, data), maxlen=self.events_maxlen,
                                     approximate=True)
        except redis.RedisError as exc:
            raise ClusterUnavailable(f"cannot publish the {info.action} event: {exc}") from exc
        return wire.text(entry)

