"""Connections held: 2,000 heartbeating stations on one CSMS process, then a fan-out.

    python benchmarks/bench_hold.py            # 2,000 stations, 15 s held, ~2 minutes
    python benchmarks/bench_hold.py --quick    # 300 stations, 3 s held

For each stack: start the CSMS process and measure its resident memory and thread count;
connect every station (spread over ``--client-procs`` processes, ``--connect-concurrency``
connects at a time in each) and time until the CSMS counts them all; hold them while each
heartbeats every ``--interval`` seconds; measure memory and threads again; then the CSMS
sends ClearCache to every station at once and times until every answer is back.
Writes benchmarks/results/hold.json.
"""
from __future__ import annotations

import argparse
import time

from _stacks import LABELS, STACKS, ClientGroup, ServerProcess, check_stacks, machine
from _stacks import machine_line, raise_fd_limit, save, table


def hold(stack: str, stations: int, args: argparse.Namespace) -> dict:
    budget = args.hold + 300
    server = ServerProcess(stack, max_life=budget, stack_size=args.server_stack_size * 1024)
    group = None
    try:
        server.request("count")
        time.sleep(0.5)  # let the fresh process settle before the baseline
        base_rss, base_threads = server.usage()
        ids = [f"CP_{i:05d}" for i in range(stations)]
        group = ClientGroup(stack, server.port, "hold", "heartbeat", ids, args.client_procs,
                            {"heartbeat_interval": args.interval,
                             "connect_concurrency": args.connect_concurrency,
                             "hold_timeout": budget, "go_timeout": 180.0},
                            max_life=budget)
        group.gather("ready", timeout=180)
        started = time.monotonic()
        group.go.set()
        seen = 0
        while time.monotonic() - started < args.connect_timeout:
            seen = server.request("count")
            if seen >= stations:
                break
            time.sleep(0.02)
        connect_seconds = time.monotonic() - started
        reports = group.gather("connected", timeout=args.connect_timeout + 60)
        failures = sum(r["failures"] for r in reports)
        peak_rss, peak_threads = server.usage()
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            time.sleep(0.25)
            rss, threads = server.usage()
            peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        held = server.request("count")
        rss, threads = server.usage()
        fanout = server.request("fanout", args.fanout_timeout, timeout=args.fanout_timeout + 30)
        group.stop_event.set()
        beats = group.gather("held", timeout=60)
    finally:
        if group is not None:
            group.finish()
        server.stop(timeout=60)
    return {
        "stack": stack, "stations": stations, "connected": seen, "held": held,
        "connect_failures": failures,
        "connect_seconds": connect_seconds if seen >= stations else None,
        "base_rss": base_rss, "base_threads": base_threads,
        "rss": rss, "threads": threads, "peak_rss": peak_rss, "peak_threads": peak_threads,
        "rss_per_connection": (rss - base_rss) / max(1, held),
        "threads_per_connection": (threads - base_threads) / max(1, held),
        "heartbeats": sum(r["heartbeats"] for r in beats),
        "heartbeat_errors": sum(r["errors"] for r in beats),
        "fanout": fanout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 stations, 3 s held")
    parser.add_argument("--stations", type=int, help="stations (default 2000, quick 300)")
    parser.add_argument("--hold", type=float, help="seconds held (default 15, quick 3)")
    parser.add_argument("--interval", type=float, help="heartbeat interval (default 5 s, quick 1 s)")
    parser.add_argument("--client-procs", type=int, default=8, help="charge point processes")
    parser.add_argument("--connect-concurrency", type=int, default=8,
                        help="connects in flight per client process")
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--fanout-timeout", type=float, default=30.0)
    parser.add_argument("--server-stack-size", type=int, default=0,
                        help="threading.stack_size for the CSMS process, KiB (0: leave as is)")
    parser.add_argument("--stacks", nargs="+", default=list(STACKS),
                        help="subset of " + ", ".join(STACKS))
    args = parser.parse_args()
    stations = args.stations or (300 if args.quick else 2000)
    args.hold = args.hold or (3.0 if args.quick else 15.0)
    args.interval = args.interval or (1.0 if args.quick else 5.0)
    limit = raise_fd_limit()
    stacks = check_stacks(args.stacks)
    info = machine()
    results = []
    for stack in stacks:
        r = hold(stack, stations, args)
        results.append(r)
        connect = f"{r['connect_seconds']:.2f} s" if r["connect_seconds"] is not None else \
            f"only {r['connected']}"
        print(f"  {LABELS[stack]:<15} connected {connect}, held {r['held']}, "
              f"{r['rss_per_connection'] / 1024:.0f} KiB and "
              f"{r['threads_per_connection']:.2f} threads per connection, "
              f"fan-out {r['fanout']['answered']}/{r['fanout']['sent']} in "
              f"{r['fanout']['seconds']:.3f} s, {r['heartbeats']} heartbeats "
              f"({r['heartbeat_errors']} errors)", flush=True)
    headers = ["stack", "time to connect all (target < 20 s)", "CSMS RSS held",
               "RSS per connection (target < 150 KiB)", "threads per connection",
               "fan-out answered", "fan-out time (target < 2 s)"]
    rows = []
    for r in results:
        rows.append([
            LABELS[r["stack"]],
            f"{r['connect_seconds']:.2f} s" if r["connect_seconds"] is not None
            else f"FAILED ({r['connected']}/{stations})",
            f"{r['rss'] / 2**20:.0f} MiB",
            f"{r['rss_per_connection'] / 1024:.0f} KiB",
            f"{r['threads_per_connection']:.2f}",
            f"{r['fanout']['answered']}/{r['fanout']['sent']}",
            f"{r['fanout']['seconds']:.3f} s",
        ])
    print()
    print(f"{stations} stations held {args.hold:g} s on one CSMS process, heartbeat every "
          f"{args.interval:g} s, clients in {args.client_procs} processes "
          f"(fd limit {limit}; {machine_line(info)})")
    print()
    print(table(headers, rows))
    path = save("hold", {"machine": info, "stations": stations, "hold": args.hold,
                         "interval": args.interval, "client_procs": args.client_procs,
                         "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
