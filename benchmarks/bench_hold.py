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

from _stacks import (
    LABELS,
    STACKS,
    ClientGroup,
    ServerProcess,
    check_stacks,
    machine,
    machine_line,
    raise_fd_limit,
    save,
    table,
)


def hold(stack: str, stations: int, args: argparse.Namespace) -> dict:
    """Measure one stack; a stack that breaks down keeps what was measured and says where."""
    budget = args.hold + 300
    r: dict = {"stack": stack, "stations": stations, "connected": 0, "held": None,
               "connect_seconds": None, "connect_failures": None, "rss": None, "threads": None,
               "rss_per_connection": None, "threads_per_connection": None, "fanout": None,
               "heartbeats": None, "heartbeat_errors": None, "error": None}
    server = ServerProcess(stack, max_life=budget, stack_size=args.server_stack_size * 1024,
                           switch_interval=args.server_switch_interval / 1000)
    group = None
    step = "starting"
    try:
        server.request("count")
        time.sleep(0.5)  # let the fresh process settle before the baseline
        r["base_rss"], r["base_threads"] = server.usage()
        ids = [f"CP_{i:05d}" for i in range(stations)]
        group = ClientGroup(stack, server.port, "hold", "heartbeat", ids, args.client_procs,
                            {"heartbeat_interval": args.interval,
                             "connect_concurrency": args.connect_concurrency,
                             "hold_timeout": budget, "go_timeout": 180.0},
                            max_life=budget)
        group.gather("ready", timeout=180)
        step = "connecting"
        started = time.monotonic()
        group.go.set()
        while time.monotonic() - started < args.connect_timeout:
            r["connected"] = server.request("count", timeout=args.control_timeout)
            if r["connected"] >= stations:
                r["connect_seconds"] = time.monotonic() - started
                break
            time.sleep(0.02)
        reports = group.gather("connected", timeout=args.connect_timeout + 60)
        r["connect_failures"] = sum(x["failures"] for x in reports)
        step = "holding"
        rss, threads = server.usage()
        r["peak_rss"], r["peak_threads"] = rss, threads
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            time.sleep(0.25)
            rss, threads = server.usage()
            r["peak_rss"] = max(r["peak_rss"], rss)
            r["peak_threads"] = max(r["peak_threads"], threads)
        r["rss"], r["threads"] = server.usage()
        # Per connection of those counted connected; the CSMS may be too busy to count again.
        r["rss_per_connection"] = (r["rss"] - r["base_rss"]) / max(1, r["connected"])
        r["threads_per_connection"] = (r["threads"] - r["base_threads"]) / max(1, r["connected"])
        r["held"] = server.request("count", timeout=args.control_timeout)
        step = "fan-out"
        r["fanout"] = server.request("fanout", args.fanout_timeout,
                                     timeout=args.fanout_timeout + args.control_timeout)
        step = "stopping"
        group.stop_event.set()
        beats = group.gather("held", timeout=60)
        r["heartbeats"] = sum(x["heartbeats"] for x in beats)
        r["heartbeat_errors"] = sum(x["errors"] for x in beats)
    except (TimeoutError, RuntimeError) as exc:
        r["error"] = f"while {step}: {exc}"
        if r["rss"] is None and server.proc.is_alive():
            r["rss"], r["threads"] = server.usage()
    finally:
        if group is not None:
            group.finish()
        server.stop(timeout=60)
    return r


def describe(r: dict) -> str:
    parts = []
    if r["connect_seconds"] is not None:
        parts.append(f"connected all in {r['connect_seconds']:.2f} s")
    else:
        parts.append(f"connected {r['connected']}/{r['stations']}")
    if r["rss_per_connection"] is not None:
        parts.append((f"held {r['held']}: " if r["held"] is not None else "")
                     + f"{r['rss_per_connection'] / 1024:.0f} KiB and "
                     f"{r['threads_per_connection']:.2f} threads per connection")
    if r["fanout"]:
        fan = r["fanout"]
        parts.append(f"fan-out {fan['answered']}/{fan['sent']} in {fan['seconds']:.3f} s")
    if r["heartbeats"] is not None:
        parts.append(f"{r['heartbeats']} heartbeats ({r['heartbeat_errors']} errors)")
    if r["error"]:
        parts.append(f"FAILED {r['error']}")
    return ", ".join(parts)


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
    parser.add_argument("--control-timeout", type=float, default=30.0,
                        help="how long the CSMS process may take to answer the harness")
    parser.add_argument("--server-stack-size", type=int, default=0,
                        help="threading.stack_size for the CSMS process, KiB (0: leave as is)")
    parser.add_argument("--server-switch-interval", type=float, default=0.0,
                        help="sys.setswitchinterval for the CSMS process, ms (0: leave as is)")
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
        print(f"  {LABELS[stack]:<15} " + describe(r), flush=True)
    headers = ["stack", "time to connect all (target < 20 s)", "CSMS RSS held",
               "RSS per connection (target < 150 KiB)", "threads per connection",
               "fan-out answered", "fan-out time (target < 2 s)"]
    rows = []
    for r in results:
        fan = r["fanout"]
        rows.append([
            LABELS[r["stack"]],
            f"{r['connect_seconds']:.2f} s" if r["connect_seconds"] is not None
            else f"not all ({r['connected']}/{stations})",
            f"{r['rss'] / 2**20:.0f} MiB" if r["rss"] is not None else "-",
            f"{r['rss_per_connection'] / 1024:.0f} KiB" if r["rss_per_connection"] is not None
            else "-",
            f"{r['threads_per_connection']:.2f}" if r["threads_per_connection"] is not None
            else "-",
            f"{fan['answered']}/{fan['sent']}" if fan else "-",
            f"{fan['seconds']:.3f} s" if fan else "-",
        ])
        if r["error"]:
            rows[-1][0] += " (FAILED " + r["error"].split(":")[0] + ")"
    print()
    print(f"{stations} stations held {args.hold:g} s on one CSMS process, heartbeat every "
          f"{args.interval:g} s, clients in {args.client_procs} processes "
          f"(fd limit {limit}; {machine_line(info)})")
    print()
    print(table(headers, rows))
    name = "hold" + ("-quick" if args.quick else "")  # a smoke run keeps the figures
    path = save(name, {"machine": info, "stations": stations, "hold": args.hold,
                       "interval": args.interval, "client_procs": args.client_procs,
                       "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
