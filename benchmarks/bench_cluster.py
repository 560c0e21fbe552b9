"""Routed cluster calls against direct calls: calls per second and added latency.

    python benchmarks/bench_cluster.py [--calls 2000] [--threads 8]

Starts a throwaway redis-server (the Debian package) on a free loopback port,
a CSMS node in a child process with simulated stations connected to it, and
calls those stations (DataTransfer) three ways: directly from the node
(``station.send``), through ``cluster.send`` on the node itself (local fast
path), and through a client-only Cluster in this process (routed over Redis
streams). Prints one table.
"""
from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from ocpp_sync import v16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", directory],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # redis-server says when it is ready; it exits on failure
        if "Ready to accept connections" in line:
            return process, f"redis://127.0.0.1:{port}/0"
    sys.exit("redis-server did not start")


def measure(call: Callable[[str], Any], station_ids: list[str], calls: int,
            threads: int) -> dict[str, float]:
    """Run ``calls`` calls spread over ``threads`` threads, each on its own station."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = max(1, calls // threads)

    def work(station_id: str) -> None:
        mine = []
        for _ in range(per_thread):
            started = time.perf_counter()
            call(station_id)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(station_ids[i % len(station_ids)],),
                                name=f"bench-{i}") for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"calls_per_s": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def request() -> Any:
    return v16.DataTransferRequest(vendor_id="bench", data="x")


def node_process(redis_url: str, station_count: int, conn: Any) -> None:
    """The CSMS node with its stations; measures the direct and node-local rows on request."""
    import ocpp_sync
    from ocpp_sync.cluster import Cluster

    csms = ocpp_sync.CSMS(versions=("1.6",))
    cluster = Cluster(redis_url, csms=csms, node_id="bench-node", prefix="bench").start()
    csms.start("127.0.0.1", 0)
    station_ids = [f"CP{i}" for i in range(station_count)]
    cps = []
    for station_id in station_ids:
        cp = ocpp_sync.ChargePoint(station_id, f"ws://127.0.0.1:{csms.port}/ocpp")
        cp.on(v16.DataTransferRequest)(
            lambda r: v16.DataTransferResponse(status="Accepted", data=r.data))
        cp.connect()
        csms.wait_for_station(station_id, timeout=10)
        cps.append(cp)
    deadline = time.monotonic() + 10  # claims land from each dispatcher, nearly at once
    while any(cluster.locate(s) is None for s in station_ids) and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    measure(lambda s: csms.stations[s].send(request(), 10), station_ids, 200, 1)  # warm-up
    conn.send(station_ids)
    while True:
        command = conn.recv()
        if command is None:
            break
        kind, calls, threads = command
        if kind == "direct":
            result = measure(lambda s, by_id=csms.stations: by_id[s].send(request(), 10),
                             station_ids, calls, threads)
        else:
            result = measure(lambda s: cluster.send(s, request(), timeout=10), station_ids, calls,
                             threads)
        conn.send(result)
    for cp in cps:
        cp.close()
    cluster.close()
    csms.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per row")
    parser.add_argument("--threads", type=int, default=8, help="callers in the concurrent rows")
    args = parser.parse_args()

    from ocpp_sync.cluster import Cluster

    with tempfile.TemporaryDirectory() as directory:
        redis_process, redis_url = start_redis(directory)
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        node = ctx.Process(target=node_process, args=(redis_url, args.threads, theirs),
                           name="bench-node")
        node.start()
        client = Cluster(redis_url, prefix="bench")
        try:
            station_ids = ours.recv()
            measure(lambda s: client.send(s, request(), timeout=10), station_ids, 200, 1)  # warm-up
            rows = []
            for threads in (1, args.threads):
                for kind in ("direct", "node-local"):
                    ours.send((kind, args.calls, threads))
                    rows.append((kind, threads, ours.recv()))
                rows.append(("routed", threads, measure(
                    lambda s: client.send(s, request(), timeout=10), station_ids, args.calls,
                    threads)))
            ours.send(None)
            node.join(30)
        finally:
            client.close()
            if node.is_alive():
                node.terminate()
            redis_process.terminate()
            redis_process.wait(10)

    direct = {threads: r for kind, threads, r in rows if kind == "direct"}
    print(f"{'path':<12}{'threads':>8}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}")
    for kind, threads, r in rows:
        added = r["p50_ms"] - direct[threads]["p50_ms"]
        print(f"{kind:<12}{threads:>8}{r['calls_per_s']:>10.0f}{r['p50_ms']:>9.2f}"
              f"{r['p99_ms']:>9.2f}{added:>+9.2f}")
    print(f"({args.calls} DataTransfer calls per row; 'routed' goes client -> Redis stream -> node "
          "-> station -> reply stream; '+p50' is against 'direct' at the same thread count)")


if __name__ == "__main__":
    main()
