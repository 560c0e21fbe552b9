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
answer lost with the link makes the message go again).

Memory is measured before the first round and after each round, once everything
is closed and gc.collect() has run. RSS alone cannot tell a leak from the
allocator's high-water mark (CPython and glibc keep freed memory), so the
verdict rests on figures that can: threads; Python memory traced by
tracemalloc (started before anything else is imported); and the census of live
ocpp_sync objects by type, counted over the baseline census (enum members,
module tables and the codec's per-class caches live as long as the modules).
The baseline is taken after a short warm-up round of a few stations, so that
one-time costs (lazy imports, the codec's compiled converters) are not counted
as growth; the start-up figures are reported too. RSS is reported too, after
malloc_trim(0) hands freed arenas back to the OS. Back to baseline means:
threads equal, no live ocpp_sync objects over the baseline census, and
traced memory no more than max(2 MiB, 10 %) over the baseline. When traced
memory is over, the top 10 allocation sites by growth (snapshot diff by
traceback) are printed and saved.
"""
from __future__ import annotations

import tracemalloc

if __name__ == "__main__":
    tracemalloc.start(8)  # first of all, so the baseline covers the imports

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
from ocpp_sync.protocol.retry import BackOff  # noqa: E402


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


def library_census() -> Counter[str]:
    """Live objects whose class the library defines, by qualified class name."""
    counts: Counter[str] = Counter()
    for o in gc.get_objects():
        kind = type(o)
        module = getattr(kind, "__module__", "") or ""
        if module == "ocpp_sync" or module.startswith("ocpp_sync."):
            counts[f"{module}.{kind.__qualname__}"] += 1
    return counts


def over(after: Counter[str], baseline: Counter[str]) -> dict[str, int]:
    return {kind: n - baseline.get(kind, 0) for kind, n in sorted(after.items()) if n > baseline.get(kind, 0)}


def traced_mib() -> float:
    return tracemalloc.get_traced_memory()[0] / 2**20


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int = 10) -> list[dict]:
    """Allocation sites that grew most since the baseline, with their innermost frames."""
    keep = (tracemalloc.Filter(False, tracemalloc.__file__),)
    stats = after.filter_traces(keep).compare_to(before.filter_traces(keep), "traceback")
    return [{"size_diff_kib": round(s.size_diff / 1024, 1), "count_diff": s.count_diff,
             "traceback": [f"{f.filename}:{f.lineno}" for f in s.traceback][-4:]}
            for s in stats[:n]]


def memory_figures() -> dict:
    """Threads, traced memory, library census and trimmed RSS, once everything is collected."""
    gc.collect()
    untrimmed = rss_mib()
    release_free_memory()
    return {"threads": threading.active_count(), "traced_mib": round(traced_mib(), 2),
            "rss_mib_untrimmed": round(untrimmed, 1), "rss_mib_trimmed": round(rss_mib(), 1)}


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
    parser.add_argument("--warmup-stations", type=int, default=5,
                        help="stations in the short warm-up round before the baseline (default 5)")
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

    startup = memory_figures()
    print("start-up " + json.dumps(startup), flush=True)
    print("warm-up round (fills the codec's per-class caches and the lazy imports)", flush=True)
    with tempfile.TemporaryDirectory(prefix="ocpp-soak-") as tmp:
        warmup = run_round(args, rng, None if args.queue_dir == "memory" else Path(tmp),
                           stations=args.warmup_stations, minutes=0.05)
    baseline = memory_figures()
    baseline_census = library_census()
    baseline_snapshot = tracemalloc.take_snapshot()
    margin_mib = max(2.0, 0.10 * baseline["traced_mib"])
    print("baseline " + json.dumps(baseline), flush=True)
    rounds = []
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}", flush=True)
        with tempfile.TemporaryDirectory(prefix="ocpp-soak-") as tmp:
            queue_dir = None if args.queue_dir == "memory" else Path(args.queue_dir or tmp) / f"round{number}"
            if queue_dir is not None:
                queue_dir.mkdir(parents=True, exist_ok=True)
            figures = run_round(args, rng, queue_dir, stations=args.stations, minutes=args.minutes)
        after = memory_figures()
        figures["memory_after"] = after
        figures["live_library_objects_after"] = over(library_census(), baseline_census)
        figures["traced_within_margin"] = after["traced_mib"] <= baseline["traced_mib"] + margin_mib
        figures["back_to_baseline"] = (after["threads"] == baseline["threads"] and figures["traced_within_margin"]
                                       and not figures["live_library_objects_after"])
        figures["top_growth"] = top_growth(baseline_snapshot, tracemalloc.take_snapshot())
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
        "threads_peak": max(r["threads_peak"] for r in rounds),
        "baseline_definition": ("threads equal, no live ocpp_sync objects over the baseline census, "
                                f"traced memory <= baseline + max(2 MiB, 10 %) = +{margin_mib:.2f} MiB"),
        "memory_at_startup": startup,
        "warmup": {"stations": args.warmup_stations, "lost": warmup["lost"], "sent": warmup["sent"]},
        "memory_before": baseline,
        "memory_after_each_round": [r["memory_after"] for r in rounds],
        "live_library_objects_after_each_round": [r["live_library_objects_after"] for r in rounds],
        "back_to_baseline": all(r["back_to_baseline"] for r in rounds),
        "per_round": rounds,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_round"}, indent=2))
    print_table(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    ok = summary["back_to_baseline"] and all(
        r["lost"] == 0 and r["unexpected"] == 0 and r["drained"] for r in rounds)
    print("OK" if ok else "FAILED", flush=True)
    sys.exit(0 if ok else 1)


def print_table(summary: dict) -> None:
    rounds = summary["per_round"]
    memory = [summary["memory_at_startup"], summary["memory_before"], *summary["memory_after_each_round"]]
    columns = ["start-up", "baseline"] + [f"after round {n + 1}" for n in range(len(rounds))]
    rows = [("lost", ["", ""] + [r["lost"] for r in rounds]),
            ("duplicates", ["", ""] + [r["duplicates"] for r in rounds]),
            ("threads", [m["threads"] for m in memory]),
            ("traced MiB", [m["traced_mib"] for m in memory]),
            ("live ocpp_sync objects",
             ["", 0] + [sum(c.values()) for c in summary["live_library_objects_after_each_round"]]),
            ("RSS MiB untrimmed", [m["rss_mib_untrimmed"] for m in memory]),
            ("RSS MiB after malloc_trim", [m["rss_mib_trimmed"] for m in memory])]
    print(f"{'':26}" + "".join(f"{c:>15}" for c in columns))
    for name, values in rows:
        print(f"{name:26}" + "".join(f"{v!s:>15}" for v in values))
    print(f"back to baseline ({summary['baseline_definition']}): {summary['back_to_baseline']}", flush=True)


def run_round(args: argparse.Namespace, rng: random.Random, queue_dir: Path | None, *,
              stations: int, minutes: float) -> dict:
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
               for n in range((stations + args.per_proxy - 1) // args.per_proxy)]
    reconnects = Counter()
    count, stations = stations, []
    for n in range(count):
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
          f"faults for {minutes:g} min", flush=True)

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
    end = started + minutes * 60
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
