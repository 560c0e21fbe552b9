"""Many stations: 1, 10, 50 and 200 charge points on one CSMS, each sending sequential calls.

    python benchmarks/bench_stations.py            # 3 rounds of 5 s per cell, ~5 minutes
    python benchmarks/bench_stations.py --quick    # 1 round of 2 s per cell, 1/10/50 stations

One CSMS process; the charge points are spread over ``--client-procs`` processes (2 by
default, the same for every stack). Prints aggregate calls per second and p50/p99
latency per stack and station count, with our ratios against the ``ocpp`` package;
writes benchmarks/results/stations.json (``plot.py`` draws it).
"""
from __future__ import annotations

import argparse

from _stacks import (
    LABELS,
    STACKS,
    TITLES,
    WORKLOADS,
    check_stacks,
    machine,
    machine_line,
    raise_fd_limit,
    ratio,
    run_rounds,
    save,
    table,
)


def show(cell: dict) -> None:
    print(f"  round {cell['round'] + 1}  {cell['stations']:>4} stations  {LABELS[cell['stack']]:<15} "
          f"{cell['rate']:7.0f} calls/s  p50 {cell['p50_ms']:.2f} ms  p99 {cell['p99_ms']:.2f} ms"
          + (f"  ({cell['errors']} errors)" if cell["errors"] else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round, up to 50 stations")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 5, quick 2)")
    parser.add_argument("--repeat", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--stations", type=int, nargs="+", help="station counts (default 1 10 50 200)")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="charge point processes per run (default 2)")
    parser.add_argument("--kind", default="heartbeat", choices=list(WORKLOADS),
                        help="the message every station sends (default heartbeat)")
    parser.add_argument("--stacks", nargs="+", default=list(STACKS),
                        help="subset of " + ", ".join(STACKS))
    args = parser.parse_args()
    raise_fd_limit()
    duration = args.duration or (2.0 if args.quick else 5.0)
    repeat = args.repeat or (1 if args.quick else 3)
    counts = args.stations or ([1, 10, 50] if args.quick else [1, 10, 50, 200])
    stacks = check_stacks(args.stacks)
    info = machine()
    cells = [(stack, args.kind, n) for n in counts for stack in stacks]
    best = run_rounds(cells, repeat, show, duration=duration, client_procs=args.client_procs)
    headers = ["stations"]
    for s in stacks:
        headers += [f"{LABELS[s]} calls/s", "p50 ms", "p99 ms"]
    both = "ours" in stacks and "ocpp" in stacks
    if both:
        headers += ["ours / ocpp calls/s (target >= 1.5x)", "p99 ours vs ocpp"]
    rows = []
    for n in counts:
        row = [str(n)]
        for s in stacks:
            cell = best[(s, args.kind, n)]
            row += [f"{cell['rate']:.0f}", f"{cell['p50_ms']:.2f}", f"{cell['p99_ms']:.2f}"]
        if both:
            ours, theirs = best[("ours", args.kind, n)], best[("ocpp", args.kind, n)]
            row.append(ratio(ours["rate"], theirs["rate"]))
            row.append("lower" if ours["p99_ms"] < theirs["p99_ms"] else "HIGHER")
        rows.append(row)
    cpu_rows = [[str(n)] + [f"{best[(s, args.kind, n)]['server_cpu']:.2f} / "
                            f"{best[(s, args.kind, n)]['client_cpu']:.2f}" for s in stacks]
                for n in counts]
    print()
    print(f"Many stations sending sequential {TITLES[args.kind]}: aggregate over "
          f"{args.client_procs} client processes, median of {repeat} round(s) of {duration:g} s "
          f"({machine_line(info)})")
    print()
    print(table(headers, rows))
    print()
    print("CPU used during the same cells, in cores (CSMS process / all charge point processes):")
    print()
    print(table(["stations"] + [LABELS[s] for s in stacks], cpu_rows))
    name = "stations" + ("-quick" if args.quick else "")  # a smoke run keeps the figures
    path = save(name, {"machine": info, "duration": duration, "repeat": repeat,
                       "kind": args.kind, "client_procs": args.client_procs,
                       "results": list(best.values())})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
