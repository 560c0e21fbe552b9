"""Soak: many stations that lose their link again and again, against one CSMS, losing nothing.

    python benchmarks/soak.py                    # 200 stations, 2 rounds of 2 minutes
    python benchmarks/soak.py --minutes 0.5 --rounds 1 --stations 20

Every station sends OCPP 2.0.1 TransactionEvents (numbered by seqNo) through the
offline queue at ``--rate`` per second. The stations reach the CSMS through
fault proxies (tests/faultproxy.py), ``--per-proxy`` stations each; every
``--drop-every`` seconds one proxy, picked at random, drops its connections
(sometimes refusing new ones for a while, so messages pile up offline), and
the stations reconnect with the back-off. At the end the proxies forward
again, every queue is drained, and the CSMS's tally is compared with what was
sent: lost messages (must be 0) and duplicates (delivery is at least once: an
answer lost with the link makes the message go again). Thread count and
memory (RSS) are taken before anything starts and after each round, once
everything has stopped: the live library objects must be none, and RSS after
the last round no higher than after the first (Python keeps freed memory, so
the first round's figure is the plateau, not the start-up figure).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import os
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from faultproxy import FaultProxy  # noqa: E402

import ocpp_sync  # noqa: E402
from ocpp_sync import v201  # noqa: E402
from ocpp_sync._backoff import BackOff  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def release_free_memory() -> None:
    """Hand freed heap back to the OS (glibc), so RSS shows what is still in use, not the peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def live_library_objects() -> dict[str, int]:
    """Objects of the library's connection-bearing classes still alive: a leak if any."""
    from ocpp_sync._connection import Connection
    from ocpp_sync._offline_queue import OfflineQueue, Outbox
    from ocpp_sync._transports.client import _ClientTransport
    from ocpp_sync._transports.server import _SimpleWebSocketTransport

    kinds = (ocpp_sync.ChargePoint, ocpp_sync.Station, Connection, OfflineQueue, Outbox,
             _ClientTransport, _SimpleWebSocketTransport)
    counts = Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds))
    return {kind.__name__: counts.get(kind.__name__, 0) for kind in kinds}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Tally:
    """What the CSMS was sent, per station and seqNo."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, int]] = Counter()

    def add(self, station: str, seq_no: int) -> None:
        with self.lock:
            self.counts[(station, seq_no)] += 1


def event(station: str, seq_no: int) -> v201.TransactionEventRequest:
    return v201.TransactionEventRequest(
        event_type="Updated", timestamp=datetime.now(timezone.utc), trigger_reason="MeterValuePeriodic",
        seq_no=seq_no, transaction_info=v201.TransactionType(transaction_id=f"T-{station}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0,
                        help="how long the faults go on in each round (default 2)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds, each with fresh stations (default 2): memory after the last "
                             "round against after the first tells a leak from the allocator's high water")
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--per-proxy", type=int, default=10, help="stations behind each fault proxy")
    parser.add_argument("--rate", type=float, default=2.0, help="messages per second per station")
    parser.add_argument("--drop-every", type=float, default=0.5, help="seconds between two link drops")
    parser.add_argument("--queue-dir", help="keep each station's queue in a sqlite file here "
                        "(default: a fresh temporary directory; 'memory' for in-memory queues)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # expected warnings about lost links by the thousand
    raise_fd_limit()
    rng = random.Random(args.seed)

    gc.collect()
    release_free_memory()
    threads_before, rss_before = threading.active_count(), rss_mib()
    rounds = []
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}", flush=True)
        with tempfile.TemporaryDirectory(prefix="ocpp-soak-") as tmp:
            queue_dir = None if args.queue_dir == "memory" else Path(args.queue_dir or tmp) / f"round{number}"
            if queue_dir is not None:
                queue_dir.mkdir(parents=True, exist_ok=True)
            figures = run_round(args, rng, queue_dir)
        gc.collect()
        figures["rss_mib_after_untrimmed"] = round(rss_mib(), 1)
        release_free_memory()
        figures["threads_after"] = threading.active_count()
        figures["rss_mib_after"] = round(rss_mib(), 1)
        figures["live_library_objects_after"] = live_library_objects()
        print(json.dumps(figures, indent=2), flush=True)
        rounds.append(figures)

    summary = {
        "stations": args.stations, "minutes_per_round": args.minutes, "rounds": args.rounds,
        "rate_per_station": args.rate,
        "queue": "memory" if args.queue_dir == "memory" else "sqlite file",
        "sent": sum(r["sent"] for r in rounds), "received": sum(r["received"] for r in rounds),
        "lost": sum(r["lost"] for r in rounds), "duplicates": sum(r["duplicates"] for r in rounds),
        "unexpected": sum(r["unexpected"] for r in rounds),
        "link_drops": sum(r["link_drops"] for r in rounds), "reconnects": sum(r["reconnects"] for r in rounds),
        "threads_before": threads_before, "threads_peak": max(r["threads_peak"] for r in rounds),
        "threads_after": rounds[-1]["threads_after"],
        "rss_mib_before": round(rss_before, 1),
        "rss_mib_after_each_round": [r["rss_mib_after"] for r in rounds],
        "per_round": rounds,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_round"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    ok = all(r["lost"] == 0 and r["unexpected"] == 0 and r["drained"] and not any(
        r["live_library_objects_after"].values()) for r in rounds) and summary["threads_after"] == threads_before
    print("OK" if ok else "FAILED", flush=True)
    sys.exit(0 if ok else 1)


def run_round(args: argparse.Namespace, rng: random.Random, queue_dir: Path | None) -> dict:
    """One soak: fresh CSMS, proxies and stations; everything is closed before it returns."""
    tally = Tally()
    csms = ocpp_sync.CSMS(versions=("2.0.1",), timeout=30.0, ping_interval=10.0, pong_timeout=10.0)

    @csms.on(v201.TransactionEventRequest)
    def on_event(station, request):
        tally.add(station.id, request.seq_no)
        return v201.TransactionEventResponse()

    # Every station comes from 127.0.0.1 here: lift the per-address caps meant for the internet.
    csms.start(max_connections_per_address=None, max_pending_handshakes=None)
    proxies = [FaultProxy(csms.port, name=f"proxy{n}").start()
               for n in range((args.stations + args.per_proxy - 1) // args.per_proxy)]
    reconnects = Counter()
    stations = []
    for n in range(args.stations):
        station_id = f"SOAK{n:04d}"
        cp = ocpp_sync.ChargePoint(
            station_id, proxies[n // args.per_proxy].url("/ocpp"), version="2.0.1", timeout=30.0,
            backoff=BackOff(wait_minimum=0.5, random_range=1.0, repeat_times=3),
            ping_interval=10.0, pong_timeout=10.0, retry_first_connect=True,
            queue_path=None if queue_dir is None else queue_dir / f"{station_id}.sqlite",
            on_reconnect=lambda cp: reconnects.update([cp.id]))
        cp.connect()
        stations.append(cp)
    print(f"{len(stations)} stations connected through {len(proxies)} proxies; "
          f"faults for {args.minutes:g} min", flush=True)

    sent: Counter[str] = Counter()
    refused = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal refused
        interval = 1.0 / (args.rate * len(stations))
        next_at = time.monotonic()
        while not stop.is_set():
            for cp in stations:
                handle = cp.send_async(event(cp.id, sent[cp.id]))
                if handle.done() and handle.exception() is not None:
                    refused += 1
                else:
                    sent[cp.id] += 1
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return

    drops = outages = 0

    def chaos() -> None:
        nonlocal drops, outages
        while not stop.wait(args.drop_every):
            proxy = rng.choice(proxies)
            if rng.random() < 0.3:  # an outage: nobody gets through for a while
                outages += 1
                proxy.refuse()
                drops += proxy.drop()
                if stop.wait(rng.uniform(1.0, 5.0)):
                    proxy.resume()
                    return
                proxy.resume()
            else:
                drops += proxy.drop()

    workers = [threading.Thread(target=traffic, name="soak-traffic"),
               threading.Thread(target=chaos, name="soak-chaos")]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    peak_threads = 0
    end = started + args.minutes * 60
    while time.monotonic() < end:
        time.sleep(min(10.0, max(0.0, end - time.monotonic())))
        peak_threads = max(peak_threads, threading.active_count())
        print(f"  {time.monotonic() - started:6.0f} s  sent {sum(sent.values())}  received "
              f"{sum(tally.counts.values())}  drops {drops}  reconnects {sum(reconnects.values())}  "
              f"threads {threading.active_count()}  rss {rss_mib():.0f} MiB", flush=True)
    stop.set()
    for worker in workers:
        worker.join()
    for proxy in proxies:
        proxy.resume()

    drain_started = time.monotonic()
    deadline = drain_started + 120
    while time.monotonic() < deadline and any(cp.queued for cp in stations):
        time.sleep(0.2)
    drained = not any(cp.queued for cp in stations)
    drain_seconds = time.monotonic() - drain_started

    with tally.lock:
        counts = dict(tally.counts)
    expected = {(station, seq) for station, n in sent.items() for seq in range(n)}
    lost = len(expected - counts.keys())
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    unexpected = len(counts.keys() - expected)

    for cp in stations:
        cp.close()
    del cp  # the loop variable would keep the last station alive in the census below
    for proxy in proxies:
        proxy.stop()
    csms.stop()
    stations.clear()
    proxies.clear()
    return {
        "sent": sum(sent.values()), "received": sum(counts.values()), "refused_by_full_queue": refused,
        "lost": lost, "duplicates": duplicates, "unexpected": unexpected,
        "link_drops": drops, "outages": outages, "reconnects": sum(reconnects.values()),
        "drained": drained, "drain_seconds": round(drain_seconds, 1), "threads_peak": peak_threads,
    }



if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
