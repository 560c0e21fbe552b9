"""ocpp_sync.cluster against a real redis-server: presence, routing, liveness, events, restarts.

Every test starts its own redis-server (no persistence) on a free loopback
port; without the binary they are skipped. Liveness windows are short here
(1.5 s) in the multi-process test so the dead-node case stays fast.
"""
from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis", reason="the cluster extra (redis client) is not installed")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)

from support.cluster_support import WAIT, Node, RedisServer  # noqa: E402

import ocpp_sync  # noqa: E402
from ocpp_sync import v16, v201  # noqa: E402
from ocpp_sync.cluster import (  # noqa: E402
    Cluster,
    ClusterUnavailable,
    EventConsumer,
    StationNotConnected,
)
from ocpp_sync.cluster import _wire as wire  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

# In-process tests never kill a node, so generous windows keep them steady on a busy machine.
LIVENESS = 3.0
TTL = 6.0


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll state that lives in Redis (it cannot notify us); bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        pause.wait(0.02)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def boot(cp: ocpp_sync.ChargePoint) -> None:
    """Boot the station; when this returns, its node has claimed it (on_connect ran first)."""
    if cp.version == "1.6":
        request = v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1")
    else:
        request = v201.BootNotificationRequest(
            charging_station=v201.ChargingStationType(vendor_name="ACME", model="X1"),
            reason="PowerUp")
    assert cp.send(request, timeout=WAIT).status == "Accepted"


def station(station_id: str, url: str, label: str, version: str = "1.6",
            on_data: Callable[[Any], Any] | None = None) -> ocpp_sync.ChargePoint:
    """A connected, booted charge point whose DataTransfer answer says who answered."""
    m = v16 if version == "1.6" else v201
    cp = ocpp_sync.ChargePoint(station_id, url, version=version, timeout=WAIT)

    @cp.on(m.DataTransferRequest)
    def data_transfer(request: Any) -> Any:
        if on_data is not None:
            return on_data(request)
        return m.DataTransferResponse(status="Accepted", data=f"{station_id}@{label}")

    cp.connect()
    boot(cp)
    return cp


class LocalNode:
    """A CSMS and its cluster node in this process."""

    def __init__(self, redis_url: str, node_id: str, prefix: str, **options: Any) -> None:
        self.csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=WAIT)
        self.cluster = Cluster(redis_url, csms=self.csms, node_id=node_id, prefix=prefix,
                               liveness=LIVENESS, presence_ttl=TTL, **options)
        for m in (v16, v201):
            @self.cluster.on(m.BootNotificationRequest)
            def boot(station: Any, request: Any, m: Any = m) -> Any:
                return m.BootNotificationResponse(current_time=datetime.now(timezone.utc),
                                                  interval=300, status="Accepted")
        self.cluster.start()
        self.gone: dict[str, threading.Event] = {}
        self.csms.on_disconnect(lambda s: self.gone.setdefault(s.id, threading.Event()).set())
        self.csms.start("127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.csms.port}/ocpp"

    def wait_gone(self, station_id: str) -> None:
        assert self.gone.setdefault(station_id, threading.Event()).wait(WAIT)

    def close(self) -> None:
        self.cluster.close()
        self.csms.stop()


@pytest.fixture
def nodes(redis_server: RedisServer, prefix: str) -> Iterator[Callable[..., LocalNode]]:
    made: list[Any] = []

    def make(node_id: str, **options: Any) -> LocalNode:
        node = LocalNode(redis_server.url, node_id, prefix, **options)
        made.append(node)
        return node

    yield make
    for node in reversed(made):
        node.close()


@pytest.fixture
def client(redis_server: RedisServer, prefix: str) -> Iterator[Cluster]:
    with Cluster(redis_server.url, prefix=prefix, liveness=LIVENESS) as cluster:
        yield cluster


@pytest.fixture
def stations() -> Iterator[list[ocpp_sync.ChargePoint]]:
    made: list[ocpp_sync.ChargePoint] = []
    yield made
    for cp in made:
        cp.close()


def data(station_id: str, version: str = "1.6", text: str = "") -> Any:
    m = v16 if version == "1.6" else v201
    return m.DataTransferRequest(vendor_id="test", data=text or None)


# -- the scripts ---------------------------------------------------------------


def test_release_and_refresh_are_fenced(redis_server: RedisServer) -> None:
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    release, refresh = r.register_script(wire.RELEASE), r.register_script(wire.REFRESH)
    ours, theirs = wire.presence_value("A", "t1", "1.6"), wire.presence_value("B", "t2", "1.6")
    earlier_self = wire.presence_value("A", "t0", "1.6")
    r.set("k", theirs, px=10_000)
    assert release(keys=["k"], args=[ours]) == 0 and r.get("k") == theirs
    assert refresh(keys=["k"], args=[ours, 5000, "A\t"]) == 0 and r.get("k") == theirs
    assert release(keys=["k"], args=[theirs]) == 1 and r.get("k") is None
    assert refresh(keys=["k"], args=[ours, 5000, "A\t"]) == 2 and r.get("k") == ours
    assert 0 < r.pttl("k") <= 5000
    assert refresh(keys=["k"], args=[ours, 9000, "A\t"]) == 1 and r.pttl("k") > 5000
    r.set("k", earlier_self)
    assert refresh(keys=["k"], args=[ours, 5000, "A\t"]) == 2 and r.get("k") == ours
    r.close()


def test_route_refuses_dead_nodes_and_other_versions(redis_server: RedisServer) -> None:
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    route = r.register_script(wire.ROUTE)
    keys = wire.Keys("p")
    r.set(keys.station("S"), wire.presence_value("A", "t", "2.0.1"))
    args = ["p", 100, "2.0.1", "id", "x"]
    assert route(keys=[keys.station("none")], args=args) == [0]
    assert route(keys=[keys.station("S")], args=args)[0] == 1
    assert r.get(keys.station("S")) is None, "a dead node's entry is removed"
    r.set(keys.station("S"), wire.presence_value("A", "t", "2.0.1"))
    r.set(keys.node("A"), "1")
    assert route(keys=[keys.station("S")], args=["p", 100, "1.6", "id", "x"])[0] == 3
    status, _, entry = route(keys=[keys.station("S")], args=args)
    assert status == 2 and r.xrange(keys.calls("A")) == [(entry, {"id": "x"})]
    r.close()


# -- routing in one process ----------------------------------------------------------


def test_calls_reach_stations_from_every_node_and_client(nodes, client, stations) -> None:
    a, b = nodes("A"), nodes("B")
    stations += [station("S1", a.url, "A"), station("S2", b.url, "B", version="2.0.1")]
    assert client.locate("S1") == ("A", "1.6", True)
    assert client.locate("S2") == ("B", "2.0.1", True)
    assert client.nodes() == ["A", "B"] and set(client.stations()) == {"S1", "S2"}
    for caller in (a.cluster, b.cluster, client):
        assert caller.send("S1", data("S1"), timeout=WAIT).data == "S1@A"
        assert caller.send("S2", data("S2", "2.0.1"), timeout=WAIT).data == "S2@B"
        assert caller.call("S2", "DataTransfer", {"vendorId": "x"}, timeout=WAIT)["data"] == "S2@B"
    futures = [client.send_async("S1", data("S1", text=str(i)), timeout=WAIT) for i in range(20)]
    assert all(f.result(WAIT).data == "S1@A" for f in futures)
    ours = [t for t in threading.enumerate() if t.name.startswith("ocpp-cluster-")]
    assert all(t.daemon for t in ours)
    assert {t.name.rsplit("-", 1)[1] for t in ours if t.name.startswith("ocpp-cluster-A-")} == {
        "keeper", "calls", "replies", "listener"}


def test_errors_travel_back_typed(nodes, client, stations) -> None:
    a = nodes("A")
    release = threading.Event()

    def answer(request: Any) -> Any:
        if request.data == "fail":
            raise ocpp_sync.OCPPError("no such vendor", code="NotSupported", details={"why": 1})
        release.wait(WAIT)
        return v16.DataTransferResponse(status="Accepted")

    stations.append(station("S1", a.url, "A", on_data=answer))
    with pytest.raises(ocpp_sync.CallError) as failed:
        client.send("S1", data("S1", text="fail"), timeout=WAIT)
    assert (failed.value.code, failed.value.description, failed.value.details) == (
        "NotSupported", "no such vendor", {"why": 1})
    started = time.monotonic()
    with pytest.raises(ocpp_sync.CallTimeout):
        client.send("S1", data("S1", text="slow"), timeout=0.5)
    assert time.monotonic() - started < 0.5 + 3.0, "the call's own timeout, not the default"
    release.set()
    with pytest.raises(StationNotConnected):
        client.send("nobody", data("nobody"), timeout=WAIT)
    with pytest.raises(ValueError, match="speaks OCPP 1.6"):
        client.send("S1", data("S1", "2.0.1"), timeout=WAIT)
    with pytest.raises(ocpp_sync.ValidationError):
        client.send("S1", v16.DataTransferRequest(vendor_id="x" * 300), timeout=WAIT)


def test_reconnect_elsewhere_is_not_removed_by_the_old_node(nodes, client, stations) -> None:
    a, b = nodes("A"), nodes("B")
    old = station("S1", a.url, "A")
    stations.append(old)
    stations.append(station("S1", b.url, "B"))
    assert client.locate("S1").node_id == "B"
    old.close()
    a.wait_gone("S1")  # A's cleanup (a fenced release) has run
    assert client.locate("S1") == ("B", "1.6", True)
    for caller in (a.cluster, client):
        assert caller.send("S1", data("S1"), timeout=WAIT).data == "S1@B"


def test_reconnect_to_the_same_node_keeps_the_new_claim(nodes, client, stations) -> None:
    a = nodes("A")
    old = station("S1", a.url, "first")
    stations.append(old)
    stations.append(station("S1", a.url, "second"))  # the CSMS closes the old connection
    a.wait_gone("S1")
    assert client.locate("S1") == ("A", "1.6", True)
    assert client.send("S1", data("S1"), timeout=WAIT).data == "S1@second"


def test_a_node_overtaken_by_a_newer_claim_closes_its_stale_connection(
        nodes, client, stations, redis_server, prefix) -> None:
    a = nodes("A")
    stations.append(station("S1", a.url, "A"))
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    newer = wire.presence_value("B", "elsewhere", "1.6")
    r.set(wire.Keys(prefix).station("S1"), newer, px=60_000)  # as if S1 opened a connection on B
    a.wait_gone("S1")
    wait_until(lambda: not stations[0].connected, WAIT, "the station saw its connection close")
    assert r.get(wire.Keys(prefix).station("S1")) == newer, "A's cleanup left B's claim alone"
    r.close()


def test_a_restarted_node_serves_calls_queued_while_down_and_replays_none(
        redis_server, prefix, client, stations) -> None:
    csms = ocpp_sync.CSMS(versions=("1.6",), timeout=WAIT)
    csms.on(v16.BootNotificationRequest)(lambda station, request: v16.BootNotificationResponse(
        current_time=datetime.now(timezone.utc), interval=300, status="Accepted"))
    csms.start("127.0.0.1", 0)
    seen: list[str] = []

    def answer(request: Any) -> Any:
        seen.append(request.data)
        return v16.DataTransferResponse(status="Accepted", data=request.data)

    stations.append(station("S1", f"ws://127.0.0.1:{csms.port}/ocpp", "A", on_data=answer))
    options = dict(csms=csms, node_id="A", prefix=prefix, liveness=LIVENESS, presence_ttl=TTL)
    try:
        with Cluster(redis_server.url, **options):
            assert client.send("S1", data("S1", text="before"), timeout=WAIT).data == "before"
        # The node is down but looks alive (as after a crash, within the liveness window).
        r = redis.Redis.from_url(redis_server.url, decode_responses=True)
        keys = wire.Keys(prefix)
        r.set(keys.node("A"), "1", px=60_000)
        r.set(keys.station("S1"), wire.presence_value("A", "old", "1.6"), px=60_000)
        queued = client.send_async("S1", data("S1", text="queued"), timeout=WAIT)
        assert not queued.done()
        with Cluster(redis_server.url, **options):
            assert queued.result(WAIT).data == "queued"
        assert seen == ["before", "queued"], "served once each, nothing replayed"
        r.close()
    finally:
        csms.stop()


def test_disconnect_and_close_remove_presence(nodes, client, stations, redis_server) -> None:
    a = nodes("A")
    cp = station("S1", a.url, "A")
    stations.append(station("S2", a.url, "A"))
    cp.close()
    a.wait_gone("S1")
    assert client.locate("S1") is None
    a.cluster.close()
    assert client.locate("S2") is None and client.nodes() == []
    with pytest.raises(StationNotConnected):
        client.send("S2", data("S2"), timeout=WAIT)


def test_redis_down_is_cluster_unavailable(nodes, client, stations, redis_server) -> None:
    a = nodes("A")
    stations.append(station("S1", a.url, "A"))
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable):
        client.send("S1", data("S1"), timeout=WAIT)
    assert time.monotonic() - started < WAIT / 2, "fails at once, not after the timeout"
    assert a.cluster.send("S1", data("S1"), timeout=WAIT).data == "S1@A", "local calls need no Redis"
    redis_server.start()
    wait_until(lambda: client.locate("S1"), TTL * 2, "S1 re-claimed after the restart")
    assert client.send("S1", data("S1"), timeout=WAIT).data == "S1@A"


# -- events --------------------------------------------------------------------


def test_events_are_delivered_at_least_once(nodes, stations, redis_server, prefix) -> None:
    a, b = nodes("A", publish_events=True), nodes("B", publish_events=True)
    stations += [station("S1", a.url, "A"), station("S2", b.url, "B", version="2.0.1")]
    first = EventConsumer(redis_server.url, "backoffice", "worker-1", prefix=prefix)
    events = first.read(count=10, block=WAIT)
    assert sorted((e.station_id, e.node_id, e.version, e.action) for e in events) == [
        ("S1", "A", "1.6", "BootNotification"), ("S2", "B", "2.0.1", "BootNotification")]
    assert {type(e.request()) for e in events} == {v16.BootNotificationRequest,
                                                   v201.BootNotificationRequest}
    first.close()
    again = EventConsumer(redis_server.url, "backoffice", "worker-1", prefix=prefix)
    assert [e.id for e in again.read(count=10, block=None)] == [e.id for e in events], \
        "unacknowledged events come back to a restarted consumer"
    assert again.ack(*events) == 2
    assert again.read(count=10, block=0.05) == []
    boot(stations[0])
    other = EventConsumer(redis_server.url, "backoffice", "worker-2", prefix=prefix)
    taken = again.read(count=10, block=WAIT)
    assert [e.station_id for e in taken] == ["S1"]
    stolen = other.claim_stale(min_idle=0)
    assert [e.id for e in stolen] == [e.id for e in taken], "a stalled consumer's events move on"
    other.ack(*stolen)
    assert other.read(count=10, block=None) == []
    again.close()
    other.close()


def test_events_survive_a_redis_restart_and_outage(nodes, stations, redis_server, prefix) -> None:
    a = nodes("A", publish_events=True)
    cp = station("S1", a.url, "A")
    stations.append(cp)
    with EventConsumer(redis_server.url, "g", "c", prefix=prefix) as consumer:
        consumer.ack(*consumer.read(block=WAIT))
        redis_server.stop()
        with pytest.raises(ocpp_sync.CallError) as refused:
            boot(cp)  # no event can be stored: the station is told to try again later
        assert refused.value.code == "InternalError"
        with pytest.raises(ClusterUnavailable):
            consumer.read(block=None)
        redis_server.start()
        boot(cp)
        events = consumer.read(block=WAIT)  # the group is re-created on the empty server
        assert [(e.station_id, e.action) for e in events] == [("S1", "BootNotification")]


def test_events_are_off_unless_asked(nodes, stations, redis_server, prefix) -> None:
    a = nodes("A")
    stations.append(station("S1", a.url, "A"))
    with EventConsumer(redis_server.url, "g", "c", prefix=prefix) as consumer:
        assert consumer.read(block=None) == []


# -- the acceptance test: three node processes ---------------------------------------


@pytest.fixture
def node_processes(redis_server: RedisServer, prefix: str,
                   tmp_path: Path) -> Iterator[Callable[..., list[Node]]]:
    made: list[Node] = []

    def make(*node_ids: str, **options: Any) -> list[Node]:
        procs = [Node(redis_server.url, n, tmp_path, prefix=prefix, **options) for n in node_ids]
        made.extend(procs)
        return [proc.ready() for proc in procs]

    yield make
    for proc in made:
        proc.stop()


def test_three_node_processes(redis_server, prefix, stations, node_processes) -> None:
    liveness = 1.5
    procs = node_processes("A", "B", "C", liveness=liveness, presence_ttl=3.0)
    by_id = {p.node_id: p for p in procs}
    client = Cluster(redis_server.url, prefix=prefix, liveness=liveness)
    try:
        layout = {"S0": ("A", "1.6"), "S1": ("B", "1.6"), "S2": ("C", "1.6"),
                  "S3": ("A", "2.0.1"), "S4": ("B", "2.0.1"), "S5": ("C", "2.0.1")}
        cps = {sid: station(sid, by_id[n].url, n, version=v) for sid, (n, v) in layout.items()}
        stations.extend(cps.values())

        def check(sid: str, expect: str, callers: list[Node]) -> None:
            version = layout[sid][1]
            for node in callers:
                answer = node.ask(cmd="send", station=sid, version=version, timeout=WAIT)
                assert answer.get("data") == expect, (node.node_id, sid, answer)
            assert client.send(sid, data(sid, version), timeout=WAIT).data == expect

        for sid, (n, _) in layout.items():
            check(sid, f"{sid}@{n}", procs)

        # S0 reconnects to B; A's cleanup of the old connection must not remove B's claim.
        stations.append(station("S0", by_id["B"].url, "B-again"))
        cps["S0"].close()
        assert by_id["A"].ask(cmd="wait_gone", station="S0", timeout=WAIT)["gone"]
        assert client.locate("S0") == ("B", "1.6", True)
        check("S0", "S0@B-again", procs)

        # C dies without cleaning up: its stations fail fast, within the liveness window.
        by_id["C"].kill()
        killed = time.monotonic()
        for sid in ("S2", "S5"):
            for node in (by_id["A"], by_id["B"]):
                answer = node.ask(cmd="send", station=sid, version=layout[sid][1], timeout=30, wait=40)
                assert answer.get("error") == "StationNotConnected", answer
                assert answer["elapsed"] < liveness + 1.0, answer
            with pytest.raises(StationNotConnected):
                client.send(sid, data(sid, layout[sid][1]), timeout=30)
        assert time.monotonic() - killed < liveness + 2.0, "not failing fast"
        for sid in ("S2", "S5"):
            cps[sid].close()

        # Redis restarts empty: A and B claim their stations again.
        redis_server.stop()
        redis_server.start()
        live = {"S0": "S0@B-again", "S1": "S1@B", "S3": "S3@A", "S4": "S4@B"}
        wait_until(lambda: all(client.locate(s) for s in live), 3.0 * 2, "presence recovered")
        assert sorted(client.nodes()) == ["A", "B"]
        for sid, expect in live.items():
            check(sid, expect, [by_id["A"], by_id["B"]])
        assert client.locate("S2") is None
    finally:
        client.close()
